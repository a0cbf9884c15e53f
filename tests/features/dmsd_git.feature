@dmsd
Feature: dmsd git check - can a repository be reached, and which branches does it have
  Before creating a droid, a client asks dmsd whether it can reach the repository, what its default branch is
  and whether a branch exists. An unreachable repository is an answer, not an API error. A droid builds the
  branch it names; a branch the repository does not have fails the droid without a retry.

  Background:
    Given dmsd is running
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=main
      CMD trap 'exit 0' TERM; echo "$PAGE" > /www/index.html; httpd -f -p "$PORT" -h /www & wait
      """
    And the repository "web" has a branch "feature-x" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=feature-x
      CMD trap 'exit 0' TERM; echo "$PAGE" > /www/index.html; httpd -f -p "$PORT" -h /www & wait
      """

  Scenario: A reachable repository, its default branch and its branches
    When alice checks the repository "<repo web>"
    Then the answer is 200 and says the repository is reachable
    And its default branch is "main" and its branches are "feature-x, main"

  Scenario: Naming a branch says whether it exists
    When alice checks the branch "feature-x" of the repository "<repo web>"
    Then the answer is 200 and says the repository is reachable
    And it says the branch exists
    When alice checks the branch "nope" of the repository "<repo web>"
    Then the answer is 200 and says the repository is reachable
    And it says the branch does not exist

  Scenario Outline: A repository that cannot be reached is reported as such
    When alice checks the repository "<repo>"
    Then the answer is 200 and says the repository is not reachable, with the error
    And the answer came within 10 seconds of the question

    Examples:
      | repo                                |
      | http://127.0.0.1:1/nothing.git      |
      | <repo missing>                      |

  Scenario Outline: A repository or a branch that cannot be right is refused naming the field
    When alice checks the branch "<branch>" of the repository "<repo>"
    Then the answer is 400 naming the field "<field>"

    Examples:
      | repo                  | branch | field  |
      | not a repository      | main   | repo   |
      | http://127.0.0.1:1/x  | a..b   | branch |

  Scenario: A droid builds the branch it names
    When alice creates a droid with the body
      """
      {"name": "feature", "repo": "<repo web>", "branch": "feature-x"}
      """
    Then the answer is 201 and the droid is "pending"
    And the droid "feature" becomes "running" within 60 seconds
    And the droid "feature" serves "feature-x"
    And the droid "feature" is on the branch "feature-x" at the latest commit of the repository "web"

  Scenario: A droid on a branch the repository does not have fails without a retry
    When alice creates a droid with the body
      """
      {"name": "nobranch", "repo": "<repo web>", "branch": "nope"}
      """
    Then the droid "nobranch" becomes "failed" within 60 seconds
    And the reason of the droid "nobranch" mentions "nope"
    And 3 seconds later the droid "nobranch" is still "failed" with exactly one build, "failed"
