@dmsd @jobs
Feature: dmsd build jobs - a repository in, its dist directory out as a tar (koalaCI's builder API)
  A client posts a job with its bearer token: dmsd clones the branch, installs the dependencies with the
  project's package manager and runs the build command in a builder image, then keeps the dist directory as the
  job's artifact. The log lives in dmsd's store and can be read whole or followed as it is written. Jobs belong
  to the user who made them. A running job can be cancelled. Each project of a user keeps a dependency cache that
  its next job finds again.

  Background:
    Given dmsd is running
    And the stack images are made
    And a git repository "site" with the file "package.json"
      """
      {"name": "site", "version": "1.0.0", "scripts": {"build": "node build.js"}}
      """
    And the repository "site" also has the file "build.js"
      """
      const fs = require("fs");
      fs.mkdirSync("dist/assets", {recursive: true});
      fs.writeFileSync("dist/index.html", "<h1>site " + process.env.DMS_DEPLOYMENT_ID + "</h1>\n");
      fs.writeFileSync("dist/assets/app.js", "console.log(1)\n");
      console.log("built with node " + process.version);
      """

  Scenario: A job clones, installs, builds, and keeps the dist directory as a tar
    When alice creates the job "first" for the project "web" and the deployment "d1" of the repository "site" with
      | build command | package manager | dist directory |
      | npm run build | npm             | dist           |
    Then the answer is 200 with the data "OK" and the job's id
    When alice follows the log of the job "first"
    Then the job log follower ends by itself within 60 seconds
    And the job log follower showed "built with node v"
    And the job log follower showed "succeeded"
    And the job "first" is "succeeded"
    And the status route of the job "first" answers "succeeded"
    And the log of the job "first" has "step build done" and "step package done"
    And the artifact of the job "first" is a tar of "./", "./assets/", "./assets/app.js", "./index.html"
    And the file "./index.html" of the artifact of the job "first" says "<h1>site d1</h1>"
    And the job "first" left no container
    And the job "d1" is the job "first"
    When alice drops the dependency cache of the project "web"
    Then the answer is 200

  Scenario: The second job of a project finds the dependency cache the first one filled
    Given alice created the job "one" for the project "web" and the deployment "d1" of the repository "site" with
      | build command | package manager | dist directory |
      | npm run build | npm             | dist           |
    And the job "one" became "succeeded" within 120 seconds
    When alice creates the job "two" for the project "web" and the deployment "d2" of the repository "site" with
      | build command | package manager | dist directory |
      | npm run build | npm             | dist           |
    Then the job "two" becomes "succeeded" within 120 seconds
    And the cache of the job "one" was cold
    And the log of the job "two" has "dependency cache: warm (filled by job <job one>"
    And the cache of the job "two" was warm, in the volume of the job "one"
    And the cache volume of the job "one" carries this dmsd's executor label
    When bob creates the job "bobs" for the project "web" and the deployment "b1" of the repository "site" with
      | build command | package manager | dist directory |
      | npm run build | npm             | dist           |
    Then the job "bobs" of bob becomes "succeeded" within 120 seconds
    And the cache of the job "bobs" of bob was cold, in a volume of its own
    When alice drops the dependency cache of the project "web"
    Then the answer is 200
    When bob drops the dependency cache of the project "web"
    Then the answer is 200
    When alice drops the dependency cache of the project "web"
    Then the answer is 404

  Scenario: Cancelling a running job stops its step within the grace period
    Given alice created the job "long" for the project "web" and the deployment "l1" of the repository "site" with
      | build command                        | package manager | dist directory |
      | echo started-the-long-one; sleep 300 | none            | dist           |
    And the log of the job "long" came to have "started-the-long-one" within 60 seconds
    When alice cancels the job "long"
    Then the answer is 200 with the data "Queued for cancellation"
    And the job "long" becomes "cancelled" within 7 seconds
    And the reason of the job "long" is "cancelled during build"
    And the job "long" left no container
    When alice cancels the job "long"
    Then the answer is 409 naming the field "id"

  Scenario: Two jobs run at once; a third waits in the queue, and cancelling it cancels it at once
    # Two users: by default one user runs at most DMS_JOB_CONCURRENCY - 1 jobs (security_jobs.feature).
    Given alice created the job "a" for the project "p" and the deployment "a" of the repository "site" with
      | build command     | package manager | dist directory |
      | echo a; sleep 300 | none            | dist           |
    And bob created the job "b" for the project "p" and the deployment "b" of the repository "site" with
      | build command     | package manager | dist directory |
      | echo b; sleep 300 | none            | dist           |
    And alice created the job "c" for the project "p" and the deployment "c" of the repository "site" with
      | build command     | package manager | dist directory |
      | echo c; sleep 300 | none            | dist           |
    When the jobs "a" and "b" run their build step
    Then 2 seconds later the job "c" is still "queued" and has no container
    When alice cancels the job "c"
    Then the answer is 200 with the data "Queued for cancellation"
    And the job "c" is "cancelled" and never started
    When alice cancels the job "a"
    And bob cancels the job "b"
    Then the job "a" becomes "cancelled" within 10 seconds
    And the job "b" becomes "cancelled" within 10 seconds

  Scenario: A failing build command fails the job with the step and its exit code, and there is no artifact
    When alice creates the job "bad" for the project "web" and the deployment "x1" of the repository "site" with
      | build command                  | package manager | dist directory |
      | echo about to fail; exit 7     | none            | dist           |
    Then the job "bad" becomes "failed" within 60 seconds
    And the reason of the job "bad" is "step build exited with code 7"
    And the log of the job "bad" has "about to fail" and "job <job bad> failed"
    When alice fetches the artifact of the job "bad"
    Then the answer is 404 naming the field "id"

  Scenario Outline: A payload with a bad <key> is refused with 400 naming it
    When alice posts a job whose "<key>" is <value>
    Then the answer is 400 naming the field "<key>"

    Examples:
      | key                     | value            |
      | project_id              | "has spaces"     |
      | deployment_id           | missing          |
      | project_branch          | "a..b"           |
      | project_repo_url        | "not a url"      |
      | project_build_command   | ""               |
      | project_package_manager | "bower"          |
      | project_dist_directory  | "../outside"     |
      | project_dist_directory  | 42               |

  Scenario: Without a token the job API answers 401; another user's job is 404 on every route
    Given alice created the job "mine" for the project "web" and the deployment "m1" of the repository "site" with
      | build command         | package manager | dist directory |
      | echo nothing to build | none            | .              |
    And the job "mine" became "succeeded" within 60 seconds
    Then every one of these requests without a token is answered 401
      | method | path                     |
      | POST   | /job/create              |
      | GET    | /job/<job mine>          |
      | GET    | /job/<job mine>/status   |
      | GET    | /job/<job mine>/log      |
      | PATCH  | /job/<job mine>/cancel   |
      | GET    | /job/<job mine>/artifact |
      | GET    | /jobs                    |
    And every one of these requests by bob is answered 404
      | method | path                     |
      | GET    | /job/<job mine>          |
      | GET    | /job/m1                  |
      | GET    | /job/<job mine>/status   |
      | GET    | /job/<job mine>/log      |
      | PATCH  | /job/<job mine>/cancel   |
      | GET    | /job/<job mine>/artifact |
    And bob has no jobs
