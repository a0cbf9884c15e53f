@dmsd
Feature: dmsd builds - from a commit to a release, and back to an earlier one
  dmsd clones the droid's repository and builds the Dockerfile at its root; its output is the droid's build
  log, which can be read live. A build that fails through the user's code fails the droid with the reason and is
  not retried; one that fails through us is. Every successful build is a release that a rollback can return to,
  as long as its image is kept.

  Scenario: The build log can be followed live while the droid builds
    Given dmsd is running
    And a git repository "slow" whose Dockerfile is
      """
      FROM dms-test/web:latest
      RUN echo "compiling part 1" && sleep 3 && echo "compiling part 2"  # build <unique>, never from the cache
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "slow" from the repository "slow"
    And alice follows the build log of the droid "slow" once it is building
    Then the build log follower shows "compiling part 1" at least 2 seconds before "compiling part 2"
    And the build log follower ends by itself within 30 seconds
    And the droid "slow" becomes "running" within 30 seconds
    And the build log follower showed "Successfully built"
    And the build log of the droid "slow" has "compiling part 2"

  Scenario: A failing Dockerfile step fails the droid with the step's error, and is not retried
    Given dmsd is running
    And a git repository "broken" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      RUN echo "failing on purpose" && false
      """
    When alice creates the droid "broken" from the repository "broken"
    Then the droid "broken" becomes "failed" within 60 seconds
    And the reason of the droid "broken" mentions "returned a non-zero code: 1"
    And the build log of the droid "broken" has "failing on purpose"
    And the droid "broken" has no release and no container
    And 3 seconds later the droid "broken" is still "failed" with exactly one build, "failed"
    When alice restarts the droid "broken"
    Then the answer is 409 naming the field "status"

  Scenario: A repository without a Dockerfile fails the droid, and the reason says so
    Given dmsd is running
    And a git repository "docs" with a README and no Dockerfile
    When alice creates the droid "docs" from the repository "docs"
    Then the droid "docs" becomes "failed" within 60 seconds
    And the reason of the droid "docs" mentions "no Dockerfile"
    And the droid "docs" has exactly one build, "failed"
    And the droid "docs" has no release and no container

  Scenario: A repository that cannot be reached is retried with backoff while the droid waits
    Given dmsd is running with the settings
      | setting            | value       |
      | DMS_GIT_ALLOW_NETS | 127.0.0.0/8 |
    When alice creates a droid with the body
      """
      {"name": "faraway", "repo": "http://127.0.0.1:1/faraway.git"}
      """
    Then the answer is 201 and the droid is "pending"
    And the reason of the droid "faraway" comes to mention "attempt 1/5 failed" and "retrying in 2s" within 20 seconds
    And the droid "faraway" is "pending"

  Scenario: Cancelling a build in progress stops it, and the next queued build starts
    # One worker: the second build waits behind the first (with more, each would have a worker of its own).
    Given dmsd is running with the settings
      | setting           | value |
      | DMS_BUILD_WORKERS | 1     |
    And a git repository "forever" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      RUN echo "building for a long time" && sleep 120
      """
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "forever" from the repository "forever"
    And alice follows the build log of the droid "forever" once it is building
    And the build log follower shows "building for a long time"
    And alice creates the droid "web" from the repository "web"
    Then the droid "web" is "pending"
    When alice cancels the build of the droid "forever"
    Then the answer is 200
    And the droid "forever" becomes "stopped" within 15 seconds
    And the reason of the droid "forever" is "cancelled"
    And the latest build of the droid "forever" is "cancelled"
    And the build log follower ends by itself within 10 seconds
    And the build log follower showed "cancelled"
    And no container runs "sleep 120" any more
    And the droid "web" becomes "running" within 30 seconds
    And the engine holds no image of the droid "forever"
    When alice cancels the build of the droid "web"
    Then the answer is 409

  # The delete lands while a step runs, after earlier steps have committed images: every image a build makes
  # carries the droid's labels from its first step, and none may be left, however far the build got.
  Scenario: The build log of a droid whose build waits in the queue can be followed at once
    # One worker: the second build waits behind the first (with more, each would have a worker of its own).
    Given dmsd is running with the settings
      | setting           | value |
      | DMS_BUILD_WORKERS | 1     |
    And a git repository "forever" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      RUN echo "building for a long time" && sleep 120
      """
    And a git repository "next" whose Dockerfile is
      """
      FROM dms-test/web:latest
      RUN echo "next is building"  # build <unique>, never from the cache
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "forever" from the repository "forever"
    And the droid "forever" becomes "building" within 30 seconds
    And alice creates the droid "next" from the repository "next"
    Then the droid "next" is "pending"
    When alice follows the build log of the droid "next" at once
    And alice cancels the build of the droid "forever"
    Then the build log follower shows "next is building"
    And the build log follower ends by itself within 30 seconds
    And no container runs "sleep 120" any more

  Scenario: Changing the branch while a build runs cancels it, and the new branch is built at once
    Given dmsd is running
    And a git repository "slow" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      RUN echo "building the old code" && sleep 120
      """
    And the repository "slow" has a branch "fast" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "slow" from the repository "slow"
    And alice follows the build log of the droid "slow" once it is building
    And the build log follower shows "building the old code"
    And alice changes the droid "slow" with
      """
      {"branch": "fast"}
      """
    Then the answer is 200
    And the droid "slow" becomes "running" within 60 seconds
    And the droid "slow" serves "ok"
    And the builds of the droid "slow" are "cancelled,succeeded", the first one's reason mentioning "superseded"
    And no container runs "building the old code" any more

  Scenario: Deleting a droid in the middle of its build leaves no image of it behind
    Given dmsd is running
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=short-lived
      RUN echo "<unique>" > /built && sleep 3
      """
    When alice creates the droid "web" from the repository "web"
    And alice follows the build log of the droid "web" once it is building
    And the build log follower shows "sleep 3"
    And alice deletes the droid "web"
    Then the answer is 200
    And the engine holds no container, image or volume of the droid "web"

  Scenario: Every successful build is a release; a rollback runs an earlier one again
    Given dmsd is running
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=v1
      CMD trap 'exit 0' TERM; echo "$PAGE" > /www/index.html; httpd -f -p "$PORT" -h /www & wait
      """
    And alice has a running droid "web" from the repository "web"
    When a new commit on the repository "web" changes its Dockerfile to
      """
      FROM dms-test/web:latest
      ENV PAGE=v2
      CMD trap 'exit 0' TERM; echo "$PAGE" > /www/index.html; httpd -f -p "$PORT" -h /www & wait
      """
    And alice changes the droid "web" with
      """
      {"branch": "main"}
      """
    Then the old container of the droid "web" serves "v1" without a miss until release 2 runs, within 60 seconds
    And the droid "web" serves "v2"
    And the releases of the droid "web" are
      | release | current | image_available |
      | 2       | true    | true            |
      | 1       | false   | true            |
    When alice rolls the droid "web" back to release 1
    Then the answer is 202
    And the droid "web" runs release 1 within 30 seconds
    And the droid "web" serves "v1"
    And the droid "web" runs in exactly one container
    When alice rolls the droid "web" back to release 7
    Then the answer is 404 naming the field "release"
    And the droid "web" is at release 1

  Scenario: A rollback to a release whose image was pruned is refused and touches nothing
    Given dmsd is running and keeps 2 releases per droid
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=v1
      CMD trap 'exit 0' TERM; echo "$PAGE" > /www/index.html; httpd -f -p "$PORT" -h /www & wait
      """
    And alice has a running droid "web" from the repository "web"
    And the droid "web" was rebuilt from a commit setting PAGE to "v2" and runs release 2
    And the droid "web" was rebuilt from a commit setting PAGE to "v3" and runs release 3
    Then the releases of the droid "web" are
      | release | current | image_available |
      | 3       | true    | true            |
      | 2       | false   | true            |
      | 1       | false   | false           |
    And the engine no longer holds the image of release 1 of the droid "web"
    Given I note the container of the droid "web"
    When alice rolls the droid "web" back to release 1
    Then the answer is 409 naming the field "release"
    And the droid "web" is at release 3
    And the droid "web" is "running" in the noted container
    And the droid "web" has no events since the noted container
    And the droid "web" serves "v3"
