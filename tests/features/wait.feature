Feature: wait - learn how an execution ended
  A client waits for an execution and gets one result that says how it ended: it exited (with which code),
  it was killed by its memory limit, or something outside killed it. Any number of clients may wait, a wait
  may give up without touching the job, and a result stays available after the end.

  Scenario: A job that succeeds
    Given I started execution "e1" running "echo done"
    When I wait for execution "e1"
    Then the outcome is "exited" with exit code 0
    And the result's stdout is "done"
    And dms-exec exited with 0

  Scenario: A job that fails
    Given I started execution "e1" running "echo oops >&2; exit 3"
    When I wait for execution "e1"
    Then the outcome is "exited" with exit code 3
    And the result's stderr is "oops"
    And the result says it was not OOM-killed
    And dms-exec exited with 3

  @needs-oom-kill
  Scenario: A job that outgrows its memory limit is OOM-killed
    Given I started execution "e1" with the flags "--memory 8m" running "x=a; while :; do x=$x$x; done"
    When I wait for execution "e1"
    Then the outcome is "oom_killed"
    And the result says it was OOM-killed
    And dms-exec exited with 137

  Scenario: A job killed from outside is told apart from an OOM kill and an exit
    Given I started execution "e1" running "sleep 30"
    And execution "e1" is running
    When someone outside dms kills the workload of execution "e1" with SIGKILL
    And I wait for execution "e1"
    Then the outcome is "signaled" with signal 9
    And the result says it was not OOM-killed
    And dms-exec exited with 137

  Scenario: Waiting for an execution nobody started fails at once
    When I wait for execution "ghost"
    Then the wait fails with NOT_FOUND
    And the answer came within 2 seconds

  Scenario: A wait that times out leaves the job running
    Given I started execution "e1" running "sleep 30"
    When I wait for execution "e1" for at most 500 ms
    Then the wait fails with TIMEOUT
    And the answer came after at least 0.5 seconds and within 3 seconds
    And execution "e1" is running

  Scenario: Several waiting clients all get the one result
    Given I started execution "e1" running "sleep 1; echo shared; exit 5"
    When 5 clients wait for execution "e1" at the same time
    Then every client gets the outcome "exited" with exit code 5
    And every client gets the same result, with stdout "shared"

  Scenario: Several threads waiting on one executor object all get the one result
    Given I started execution "e1" running "sleep 1; echo shared; exit 5"
    When 6 threads of one executor object wait for execution "e1" at the same time
    Then every thread gets the outcome "exited" with exit code 5
    And every thread gets the same result, with stdout "shared"

  Scenario: Waiting after the end returns the stored result
    Given execution "e1" ran to completion running "echo kept; exit 4"
    When I wait for execution "e1"
    And I wait for execution "e1" again
    Then both waits give the outcome "exited" with exit code 4
    And both waits give the same result, with stdout "kept"
