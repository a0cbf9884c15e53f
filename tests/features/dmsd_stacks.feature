@dmsd @detect
Feature: dmsd stacks - a repository without a Dockerfile still builds and runs
  dmsd looks at a repository without a Dockerfile: the language the user gave, else its marker files
  (package.json, requirements.txt, index.html, Procfile, start.sh), pick a stack; the stack's template becomes the
  Dockerfile, shown in the build log, and the image starts FROM a local stack image (made by scripts/stack-images:
  there is no registry here). A repository that fits no stack fails, and the reason lists what was looked for.

  Background:
    Given dmsd is running
    And the stack images are made

  Scenario Outline: A <stack> repository without a Dockerfile builds, runs, and answers on its port
    Given a git repository "app" holding the <stack> example
    When alice creates the droid "app" from the repository "app"
    Then the droid "app" becomes "running" within 120 seconds
    And the droid "app" answers "<answer>"
    And the build log of the droid "app" has "no Dockerfile: stack <stack>"
    And the build log of the droid "app" has "FROM <image>"

    Examples:
      | stack  | image                    | answer        |
      | static | dms-stack/busybox:latest | static page   |
      | shell  | dms-stack/busybox:latest | shell app     |
      | node   | dms-stack/node:latest    | node app v18  |
      | python | dms-stack/python:latest  | python app    |

  Scenario: A static site serves its files, not the Dockerfiles of its build
    Given a git repository "site" holding the static example
    When alice creates the droid "site" from the repository "site"
    Then the droid "site" becomes "running" within 60 seconds
    And the droid "site" answers "static page"
    And the droid "site" answers 404 for "/Dockerfile"
    And the droid "site" answers 404 for "/.dms-labelled.Dockerfile"

  Scenario: A repository that fits no stack fails, and the reason lists what was looked for
    Given a git repository "docs" with a README and no Dockerfile
    When alice creates the droid "docs" from the repository "docs"
    Then the droid "docs" becomes "failed" within 60 seconds
    And the reason of the droid "docs" mentions "no Dockerfile and no known stack"
    And the reason of the droid "docs" mentions "package.json (node), requirements.txt or pyproject.toml (python), index.html (static site), Procfile or start.sh (shell)"
    And the droid "docs" has exactly one build, "failed"

  Scenario: The language the user gives wins over the marker files
    Given a git repository "both" holding the shell example and an index.html
    When alice creates a droid with the body
      """
      {"name": "both", "repo": "<repo both>", "language": "shell"}
      """
    Then the droid "both" becomes "running" within 120 seconds
    And the droid "both" answers "shell app"
    And the build log of the droid "both" has "no Dockerfile: stack shell (language"
