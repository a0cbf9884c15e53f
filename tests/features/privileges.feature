@needs-privileges
Feature: privileges - what a workload may do as a process: its capabilities, and no privilege gained by execve
  A request may drop capabilities (all of them, then add a few back) and forbid that execve ever grants
  privilege (no_new_privileges). The workload then holds exactly the capabilities it was given, cannot open a
  raw socket without NET_RAW, and a setuid-root program it runs keeps its caller's uid. The same job without
  those settings shows that each of them is what makes the difference.

  Background:
    Given the privilege probe, and a setuid-root copy of it, where the job can run them

  Scenario: With no_new_privileges, a setuid-root program cannot raise a job's uid
    When I run "$MARK/privprobe-suid euid" as execution "suid-default" with the flags "--user 1000"
    Then the outcome is "exited" with exit code 0
    And the result's stdout is "euid=0"
    When I run "$MARK/privprobe-suid euid" as execution "suid-nnp" with the flags "--user 1000 --no-new-privileges"
    Then the outcome is "exited" with exit code 0
    And the result's stdout is "euid=1000"

  Scenario: With NET_RAW dropped, a raw socket cannot be opened
    When I run "$MARK/privprobe raw" as execution "raw-default" with the flags "--network none"
    Then the outcome is "exited" with exit code 0
    And the result's stdout is "raw socket: opened"
    When I run "$MARK/privprobe raw" as execution "raw-dropped" with the flags "--network none --cap-drop NET_RAW"
    Then the outcome is "exited" with exit code 1
    And the result's stdout is "raw socket: Operation not permitted"

  Scenario: The capability sets a workload holds are exactly the ones asked for
    When I run "grep -E '^(Cap|NoNewPrivs)' /proc/self/status" as execution "caps" with the flags "--cap-drop ALL --cap-add NET_BIND_SERVICE,KILL --no-new-privileges"
    Then the outcome is "exited" with exit code 0
    And the workload's capability sets are
      | set        | mask             |
      | CapInh     | 0000000000000000 |
      | CapPrm     | 0000000000000420 |
      | CapEff     | 0000000000000420 |
      | CapBnd     | 0000000000000420 |
      | CapAmb     | 0000000000000000 |
      | NoNewPrivs | 1                |

  Scenario: An unknown capability is refused before anything exists, naming the entry
    When I start execution "bad-cap" with the flags "--cap-drop NET_RAW --cap-add NET_RWA"
    Then the start fails with INVALID naming the field "security.cap_add[0]"
    And nothing exists for execution "bad-cap"
