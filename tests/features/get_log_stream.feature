Feature: get_log_stream - read what an execution printed
  A client reads an execution's output: the history then the end, or live while it runs. It can ask for the
  last lines only, for one stream only, and it can still read after the workload is gone. Output far bigger
  than the capture limit keeps its newest part and never fills the disk.

  Scenario: Reading the history of a finished job, then the end
    Given execution "e1" ran to completion running "echo one; echo two; echo three"
    When I read the logs of execution "e1"
    Then the logs are
      """
      one
      two
      three
      """
    And the log reader ended by itself

  Scenario: Following a running job shows new lines as they come and ends with the job
    Given I started execution "e1" running "echo first; sleep 1; echo second; sleep 1; echo last"
    When I follow the logs of execution "e1"
    Then the follower shows "first", "second" and "last" in that order
    And "second" reached the follower at least 0.5 seconds after "first"
    And the follower ended by itself within 3 seconds of the job's end

  Scenario: Tail gives only the last lines
    Given execution "e1" ran to completion running "seq 1 10"
    When I read the last 3 lines of the logs of execution "e1"
    Then the logs are
      """
      8
      9
      10
      """

  Scenario: Standard output and standard error are kept apart
    Given execution "e1" ran to completion running "echo out1; echo err1 >&2; echo out2; echo err2 >&2"
    When I read only the stdout of execution "e1"
    Then the logs are
      """
      out1
      out2
      """
    When I read only the stderr of execution "e1"
    Then the logs are
      """
      err1
      err2
      """

  Scenario: Each log frame says which stream it came from
    Given execution "e1" ran to completion running "echo out1; echo err1 >&2"
    When I read the logs of execution "e1" as JSON frames
    Then the log reader ended by itself
    And the frame "out1" came from stdout
    And the frame "err1" came from stderr

  Scenario: The logs outlive the workload
    Given execution "e1" ran to completion running "echo still here"
    And the workload of execution "e1" is gone
    When I read the logs of execution "e1"
    Then the logs are
      """
      still here
      """

  Scenario: Output far bigger than the capture limit keeps its newest lines and a bounded size on disk
    Given execution "e1" ran to completion with the flags "--log-bytes 64k" running "seq 1 500000"
    When I read the logs of execution "e1"
    Then the last line of the logs is "500000"
    And the first line of the logs is not "1"
    And the logs hold consecutive numbers up to 500000
    # 3.4 MB written; the capture keeps two files of about 64 KiB (a write may overshoot a file before it rotates)
    And the capture files of execution "e1" take at most 192 KiB on disk
