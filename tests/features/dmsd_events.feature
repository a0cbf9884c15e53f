@dmsd
Feature: dmsd events - a droid's history
  Every state change of a droid is an event with its time and its reason, so its owner can tell what happened
  and why; the history can be read in pages.

  Background:
    Given dmsd is running
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """

  Scenario: Every state change is an event with its time and reason
    Given alice has a running droid "web" from the repository "web"
    When alice stops the droid "web"
    And alice starts the droid "web"
    Then the droid "web" becomes "running" within 30 seconds
    And the events of the droid "web" are, in order
      | from     | to       | reason begins with                   |
      |          | pending  | created; waiting for its first build |
      | pending  | building | build 1 (attempt 1): cloning         |
      | building | starting | build 1 succeeded: release 1         |
      | starting | running  | running release 1 on 127.0.0.1:      |
      | running  | stopped  | stopped on request                   |
      | stopped  | starting | start requested                      |
      | starting | running  | running release 1 on 127.0.0.1:      |
    And each event starts where the one before ended, and no event is older than the one before

  Scenario: A failed build is in the history with its reason
    Given a git repository "broken" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      RUN exit 7
      """
    When alice creates the droid "broken" from the repository "broken"
    Then the droid "broken" becomes "failed" within 60 seconds
    And the events of the droid "broken" are, in order
      | from     | to       | reason begins with                   |
      |          | pending  | created; waiting for its first build |
      | pending  | building | build 1 (attempt 1): cloning         |
      | building | failed   | build 1 failed:                      |
    And the last event of the droid "broken" mentions "returned a non-zero code: 7"

  Scenario: The history can be read in pages
    Given alice has a running droid "web" from the repository "web"
    When alice reads the events of the droid "web" with "?after=1&limit=2"
    Then the answer holds the events 2 and 3 of the droid "web"
    When alice reads the events of the droid "web" with "?after=3"
    Then the answer holds the events 4 and on of the droid "web"
