Feature: health checks - the workload's own check, and what status says of it
  Compose's depends_on: condition: service_healthy starts a service only once another's check passes. An execution
  may carry a check that the backend runs inside the workload, every interval; status says "starting" until the
  first verdict, then "healthy" or "unhealthy", and "none" without a check. --no-healthcheck turns off even the
  image's own HEALTHCHECK. A backend that cannot run a check refuses one, naming the field, before anything exists.

  @needs-healthcheck
  Scenario: A workload whose check passes becomes healthy
    Given I started execution "web" with the flags "--health-cmd 'test -f /tmp/ready' --health-interval 200ms --health-retries 50" running "sleep 1; touch /tmp/ready; exec sleep 60"
    Then execution "web" becomes "starting"
    And execution "web" becomes "healthy"

  @needs-healthcheck
  Scenario: A workload whose check fails becomes unhealthy
    Given I started execution "web" with the flags "--health-cmd 'exit 1' --health-interval 200ms --health-retries 2" running "exec sleep 60"
    Then execution "web" becomes "unhealthy"

  @needs-healthcheck
  Scenario: Failures in the start period do not count
    Given I started execution "slow" with the flags "--health-cmd 'exit 1' --health-interval 200ms --health-retries 1 --health-start-period 1m" running "exec sleep 60"
    Then execution "slow" stays "starting" for 2 seconds

  @needs-healthcheck @needs-image
  Scenario: --no-healthcheck turns off the image's own check
    Given an image "checked" of this executor whose own HEALTHCHECK passes
    And I started execution "own" from that image with the flags "" running "exec sleep 60"
    And I started execution "unchecked" from that image with the flags "--no-healthcheck" running "exec sleep 60"
    Then execution "own" becomes "healthy"
    And execution "unchecked" stays "none" for 1 seconds

  Scenario: A workload without a check reports no health
    Given I started execution "plain" running "exec sleep 60"
    Then execution "plain" stays "none" for 1 seconds

  Scenario: A backend that runs no checks refuses one, and a disabled check is no reason to refuse
    When I start execution "checked" with the flags "--health-cmd true"
    Then the start succeeds where the backend runs health checks, and elsewhere fails with NOT_SUPPORTED naming the field "healthcheck" and leaves nothing of execution "checked"
    Given execution "unchecked" ran to completion with the flags "--no-healthcheck" running "echo ok"
    Then the outcome is "exited" with exit code 0
    And the result's stdout is "ok"

  Scenario Outline: Health flags that contradict one another are refused before anything exists
    When I start execution "<execution>" with the flags "<flags>"
    Then dms-exec exited with 2
    And nothing exists for execution "<execution>"

    Examples:
      | execution    | flags                                            |
      | timing-alone | --health-interval 1s                             |
      | off-and-on   | --no-healthcheck --health-cmd true               |
      | off-and-time | --no-healthcheck --health-retries 3              |
      | too-long     | --health-cmd true --health-interval 25h          |
      | no-retries   | --health-cmd true --health-retries 0             |
