Feature: cancel - stop an execution
  A client stops an execution it no longer wants: politely first (SIGTERM), then for sure (SIGKILL) once the
  grace period is over. A cancel while the job is still being prepared creates nothing. Cancelling what has
  already finished is harmless, and two clients cancelling at once both succeed.

  Scenario: Cancelling a running job ends it as cancelled
    Given I started execution "e1" running "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done"
    And the output of execution "e1" says "ready"
    When I cancel execution "e1"
    Then the cancel succeeds
    And the answer came within 5 seconds
    And no workload of execution "e1" is running any more
    When I wait for execution "e1"
    Then the outcome is "cancelled"

  Scenario: A job that ignores SIGTERM is killed once its grace period is over
    Given I started a job that ignores SIGTERM as execution "e1" with the flags "--grace 2s"
    And the output of execution "e1" says "sigterm-ignorer: ready"
    When I cancel execution "e1"
    Then the cancel succeeds
    And the answer came after at least 2 seconds and within 5 seconds
    And no workload of execution "e1" is running any more
    When I wait for execution "e1"
    Then the outcome is "cancelled" with signal 9
    And the output of execution "e1" says "SIGTERM ignored"

  Scenario: A cancel "at once" kills without waiting for the grace period
    Given I started a job that ignores SIGTERM as execution "e1" with the flags "--grace 30s"
    And the output of execution "e1" says "sigterm-ignorer: ready"
    When I cancel execution "e1" at once
    Then the cancel succeeds
    And the answer came within 3 seconds
    And no workload of execution "e1" is running any more
    When I wait for execution "e1"
    Then the outcome is "cancelled" with signal 9

  @needs-image
  Scenario: Cancelling from another client while the image is being pulled creates nothing
    Given a registry on 127.0.0.1 that accepts connections and never answers
    And a client is starting execution "e1" from an image on that registry
    And the registry has been asked for the image
    When I cancel execution "e1"
    Then the cancel succeeds
    And the answer came within 5 seconds
    And the starting client fails with CANCELLED within 5 seconds
    And nothing exists for execution "e1" but its state
    When I wait for execution "e1"
    Then the outcome is "cancelled"

  @needs-image
  Scenario: Cancelling from another thread of the same executor while the image is being pulled
    Given a registry on 127.0.0.1 that accepts connections and never answers
    When one thread starts execution "e1" from an image on that registry and another thread cancels it a second later
    Then the cancel succeeded within 5 seconds
    And the start failed with CANCELLED
    And the result's outcome is "cancelled"
    And nothing exists for execution "e1" but its state

  Scenario: Cancelling a job that already finished is harmless
    Given execution "e1" ran to completion running "echo finished"
    When I cancel execution "e1"
    Then the cancel fails with ALREADY_COMPLETE
    When I wait for execution "e1"
    Then the outcome is "exited" with exit code 0
    And the result's stdout is "finished"

  Scenario: Cancelling an execution nobody started
    When I cancel execution "ghost"
    Then the cancel fails with NOT_FOUND
    And the answer came within 2 seconds

  Scenario: Two clients cancel a job that takes a second to stop, and both succeed
    Given I started execution "e1" running "trap 'sleep 1; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
    And the output of execution "e1" says "ready"
    When 2 clients cancel execution "e1" at the same time
    Then every cancel succeeds within 5 seconds
    When I wait for execution "e1"
    Then the outcome is "cancelled"
