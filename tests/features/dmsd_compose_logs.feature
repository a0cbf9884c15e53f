@dmsd
Feature: dmsd compose droids - every service's logs in one, interleaved by time and tagged
  Without `service` (and without `run`), a compose droid's runtime logs are those of all its services: the
  latest run of each, merged by time, each line tagged with its service (`[alpha] ` in text, a "service"
  member in JSON). Paging with `from` and `X-Last-Log-Nano` walks every line exactly once, and a follow brings
  the live lines of every service.

  Background:
    Given a dmsd that routes droids through its own Caddy
    And a git repository "duo" holding the compose file
      """
      services:
        web:
          image: dms-test/web:latest
          ports: ["8080"]
        alpha:
          image: dms-test/busybox:latest
          command: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo \"alpha $$i\"; sleep 0.3; done"]
        beta:
          image: dms-test/busybox:latest
          command: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo \"beta $$i\"; sleep 0.3; done"]
      """
    And the compose droid "duo" is created from the repository "duo"
    And the routed droid "duo" is "running" within 90 s

  Scenario: The droid's logs hold the lines of both services, tagged, in time order
    Then the logs of "duo" hold at least 5 lines of each of "alpha" and "beta" within 30 s
    And every line of the logs of "duo" is tagged with its service, in time order, counting up per service
    And nothing of the routed dmsd is left once it stops

  Scenario: Paging with from and the cursor walks every line exactly once
    Given the logs of "duo" hold at least 10 lines of each of "alpha" and "beta" within 30 s
    Then pages of 3 lines of the logs of "duo", each from the cursor of the one before, hold every line once
    And nothing of the routed dmsd is left once it stops

  Scenario: The JSON form names the service of every line
    Given the logs of "duo" hold at least 3 lines of each of "alpha" and "beta" within 30 s
    Then every object of the JSON logs of "duo" has a service, and "alpha" and "beta" are among them
    And nothing of the routed dmsd is left once it stops

  Scenario: A follow brings the live lines of both services
    When I follow the logs of "duo" from now on
    Then the followed logs bring lines of both "alpha" and "beta" within 20 s
    And nothing of the routed dmsd is left once it stops

  Scenario: Another user cannot read the merged logs
    Then bob's request for the logs of "duo" is answered 404
    And nothing of the routed dmsd is left once it stops
