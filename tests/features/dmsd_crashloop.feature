@dmsd
Feature: dmsd crash loop - an app that keeps dying, an app that cannot start
  A container that keeps dying is restarted with a growing delay, a bounded number of times; then the droid is
  failed with the exit code in the reason, and nothing of it runs. A container that cannot even start is
  tried three times.

  Background:
    Given dmsd is running

  Scenario: A container that keeps dying is restarted with backoff 5 times, then failed with its exit code
    Given a git repository "crash" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      CMD echo "about to fail"; exit 3
      """
    When alice creates the droid "crash" from the repository "crash"
    Then the droid "crash" becomes "failed" within 120 seconds
    And the reason of the droid "crash" mentions "crash loop"
    And the reason of the droid "crash" mentions "code 3"
    And the events of the droid "crash" announce restarts 1/5 to 5/5 after 1, 2, 4, 8 and 16 seconds
    And each restart came no sooner than the delay it announced
    And no container of the droid "crash" runs any more
    And the current run of the droid "crash" has printed "about to fail"
    And 3 seconds later the droid "crash" is still "failed" and has no new events

  Scenario: A container that cannot start is tried once and retried 3 times, then failed
    Given a git repository "nostart" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      CMD ["/no/such/program"]
      """
    When alice creates the droid "nostart" from the repository "nostart"
    Then the droid "nostart" becomes "failed" within 60 seconds
    And the reason of the droid "nostart" mentions "would not start after 4 attempts"
    And the events of the droid "nostart" hold 3 saying "start attempt"
    And no container of the droid "nostart" runs any more
