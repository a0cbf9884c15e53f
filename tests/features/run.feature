Feature: run - start a job and wait for its end in one call
  The shortest path: run a job, see its output, and get its exit code as dms-exec's own, like `docker run`.
  A run timeout stops a job that takes too long and says so.

  Scenario: A job that succeeds
    When I run "echo hello from the job"
    Then dms-exec exited with 0
    And its own output shows "hello from the job"

  Scenario: A job that succeeds, as a result
    When I run "echo hello" with a JSON result
    Then dms-exec exited with 0
    And the outcome is "exited" with exit code 0
    And the result's stdout is "hello"

  Scenario: A job that fails passes its exit code on
    When I run "echo failing >&2; exit 42" with a JSON result
    Then dms-exec exited with 42
    And the outcome is "exited" with exit code 42
    And the result's stderr is "failing"

  Scenario: A job whose program does not exist could not run, and says so with exit code 127
    When I run the program "/no/such/program" with a JSON result
    Then dms-exec exited with 127

  Scenario: A job that outlives its run timeout is stopped and marked timed out
    When I run "sleep 30" with the flags "--timeout 1s --grace 1s" and a JSON result
    Then dms-exec exited with 124
    And the answer came after at least 1 seconds and within 6 seconds
    And the outcome is "timed_out"
    And nothing is left running for the run

  @needs-engine-socket
  Scenario: With no engine answering and no image asked for, a job runs as host processes, and says so
    When without choosing a backend, through a socket path where nothing exists, I start execution "fb" running "echo from-host; exit 3"
    Then dms-exec exited with 0
    And dms-exec said "no Docker engine" and "running it as host processes"
    When without choosing a backend, through that socket path, I call dms-exec wait on "fb"
    Then the outcome is "exited" with exit code 3
    And dms-exec said "no Docker engine" and "fb is an execution of the process backend"
    When without choosing a backend, through that socket path, I call dms-exec logs on "fb"
    Then dms-exec exited with 0
    And dms-exec printed "from-host"
    When without choosing a backend, through that socket path, I call dms-exec rm on "fb"
    Then dms-exec exited with 0

  @needs-engine-socket
  Scenario: With no engine answering, a job that asks for an image runs nowhere else
    When without choosing a backend, through a socket path where nothing exists, I start execution "img" from the image "dms-test/busybox:latest"
    Then the start fails with UNAVAILABLE
