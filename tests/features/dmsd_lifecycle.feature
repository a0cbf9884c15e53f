@dmsd
Feature: dmsd lifecycle - stop, start and restart a droid
  A droid's owner stops it (the answer comes once it is stopped), starts it again, and restarts it. A restart
  lets the app stop gracefully; a forced restart kills the old container at once, for an app that will not
  stop when asked.

  Background:
    Given dmsd is running
    And a git repository "app" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD trap 'echo "stopping gracefully"; exit 0' TERM; echo "started"; httpd -f -p "$PORT" -h /www & wait
      """
    And a git repository "stubborn" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      CMD trap 'echo "SIGTERM ignored"' TERM; echo "ready"; while :; do sleep 1; done
      """

  Scenario: Stopping a droid answers once it is stopped; starting it runs it again
    Given alice has a running droid "app" from the repository "app"
    And I note the container of the droid "app"
    When alice stops the droid "app"
    Then the answer is 200 and the droid is "stopped"
    And no container of the droid "app" is running
    And the noted run printed "stopping gracefully"
    When alice starts the droid "app"
    Then the answer is 202
    And the droid "app" becomes "running" within 30 seconds
    And the droid "app" serves "ok"
    And the droid "app" runs in exactly one container
    And the current run of the droid "app" has printed "started"

  Scenario: A restart stops the old container gracefully and runs a new one
    Given alice has a running droid "app" from the repository "app"
    And I note the container of the droid "app"
    When alice restarts the droid "app"
    Then the answer is 202
    And the droid "app" runs in a new container within 30 seconds
    And the noted run printed "stopping gracefully"
    And the droid "app" serves "ok"

  Scenario: A plain restart of an app that ignores SIGTERM waits out the grace period
    Given alice has a running droid "stubborn" from the repository "stubborn"
    And the current run of the droid "stubborn" has printed "ready"
    And I note the container of the droid "stubborn"
    When alice restarts the droid "stubborn"
    Then the answer is 202
    And the noted container stopped no sooner than 2.5 seconds after the request
    And the noted run printed "SIGTERM ignored"
    And the droid "stubborn" runs in a new container within 30 seconds

  Scenario: A forced restart kills the old container at once
    Given alice has a running droid "stubborn" from the repository "stubborn"
    And the current run of the droid "stubborn" has printed "ready"
    And I note the container of the droid "stubborn"
    When alice restarts the droid "stubborn" with force
    Then the answer is 202
    And the noted container stopped within 1.5 seconds of the request
    And the droid "stubborn" runs in a new container within 30 seconds
    And the noted run did not print "SIGTERM ignored"
    And the droid "stubborn" has an event saying "restart requested (force)"

  Scenario: A droid's volume keeps its data across a restart
    When alice creates a droid with the body
      """
      {"name": "app", "repo": "<repo app>", "volumes": [{"name": "data", "mount_path": "/data"}]}
      """
    Then the droid "app" becomes "running" within 60 seconds
    Given I note the container of the droid "app"
    And the droid "app"'s container has written "kept" to "/data/note"
    When alice restarts the droid "app"
    Then the droid "app" runs in a new container within 30 seconds
    And the droid "app"'s container reads "kept" from "/data/note"
