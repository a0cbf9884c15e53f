@dmsd
Feature: dmsd reconciliation - dmsd is killed and comes back
  dmsd can die at any moment (kill -9). What it wants is in its store; when it comes back it finds its
  containers again by their labels and carries on: a running droid keeps its very container, an interrupted
  build is done again, a container that died meanwhile is started again, and nothing is duplicated or leaked.

  Background:
    Given dmsd is running
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """

  Scenario: A running droid is re-adopted in the very same container
    Given alice has a running droid "web" from the repository "web"
    And I note the container of the droid "web"
    When dmsd is killed with SIGKILL
    Then the droid "web" still serves "ok" while dmsd is down
    When dmsd starts again on the same data
    Then the droid "web" is "running" in the noted container
    And the droid "web" serves "ok"
    And 3 seconds later the droid "web" still runs only in the noted container
    And the droid "web" has no events since the noted container

  Scenario: A build interrupted by the kill is done again after the restart, once
    Given a git repository "slow" whose Dockerfile is
      """
      FROM dms-test/web:latest
      RUN echo "compiling" && sleep 4  # build <unique>
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "slow" from the repository "slow"
    And alice follows the build log of the droid "slow" once it is building
    And the build log follower shows "compiling"
    And dmsd is killed with SIGKILL
    And dmsd starts again on the same data
    Then the droid "slow" becomes "running" within 60 seconds
    And the droid "slow" has exactly one build, "succeeded", at attempt 2
    And 3 seconds later the droid "slow" runs in exactly one container, from exactly one image
    And no container runs "sleep 4" any more

  Scenario: A container that died while dmsd was down is started again
    Given alice has a running droid "web" from the repository "web"
    And I note the container of the droid "web"
    When dmsd is killed with SIGKILL
    And someone outside dmsd kills the noted container
    And dmsd starts again on the same data
    Then the droid "web" runs in a new container within 30 seconds
    And the droid "web" serves "ok"
    And 3 seconds later the droid "web" runs in exactly one container, from exactly one image

  Scenario: A dmsd that starts before the engine answers serves its API, and builds and runs once it does
    Given alice has a running droid "web" from the repository "web"
    And I note the container of the droid "web"
    When dmsd is killed with SIGKILL
    And dmsd starts again on the same data while the engine's socket is missing
    And alice creates the droid "late" from the repository "web"
    Then the answer is 201
    And 3 seconds later the droid "late" is still "pending" and has no new events
    When the engine's socket appears
    Then every one of 60 requests listing alice's droids was answered 200 meanwhile
    And the droid "late" becomes "running" within 60 seconds
    And the droid "late" serves "ok"
    And 3 seconds later the droid "web" still runs only in the noted container
