Feature: recover - pick up what an earlier process left behind
  The DMS host restarts while jobs run. A new process with the same executor id must find the running jobs and
  follow them to their end, and give jobs that finished meanwhile their real result, never running them again.

  Scenario: A new process finds a job that is still running and waits for it
    Given a client started execution "e1" running "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done; exit 7" and stays to wait for it
    And execution "e1" is running
    And that client dies without a word
    When a new process recovers the executor
    Then it adopted 1 execution
    And execution "e1" is running
    When I wait for execution "e1"
    Then the outcome is "exited" with exit code 7
    And the result's stdout has every line from "tick 1" to "tick 6"

  Scenario: The process that recovers a running job waits for it on the same executor object
    Given a client started execution "e2" running "for i in 1 2 3 4; do echo tick $i; sleep 0.3; done; exit 5" and stays to wait for it
    And execution "e2" is running
    And that client dies without a word
    When a new process recovers the executor and waits for execution "e2" on the same executor object
    Then it adopted 1 execution
    And the outcome is "exited" with exit code 5
    And the result's stdout has every line from "tick 1" to "tick 4"

  Scenario: A job that finished while nobody watched gets its real result and is not run again
    Given a marker file the job can append to
    And I started execution "f1" running "echo ran >> $MARK/runs; echo finished; exit 3"
    And the workload of execution "f1" has ended while nobody watched
    When a new process recovers the executor
    Then it adopted 1 execution
    When I wait for execution "f1"
    Then the outcome is "exited" with exit code 3
    And the result's stdout is "finished"
    And the marker file says the job ran exactly once
    When a new process recovers the executor
    And I wait for execution "f1"
    Then the outcome is "exited" with exit code 3
    And the marker file says the job ran exactly once
    And the workload of execution "f1" is gone
