Feature: network aliases - a workload found by names of its own on its named network
  Compose services find one another by service name, but a container is named after its executor and execution.
  An execution on a named network may carry aliases: the other executions on that network reach it by them, one
  on another network cannot even resolve them, and an alias without a named network is refused before anything
  exists. A backend without named networks refuses aliases naming network.aliases (its unit suite shows it).

  @needs-networks
  Scenario: An execution reaches another on its network by each of its aliases
    Given I started execution "web" with the flags "--network <executor id>-app --network-alias web --network-alias www" running "echo hello from web > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
    When I run "i=0; until timeout 3 wget -q -O /dev/null http://web:8080/ 2>/dev/null; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done; timeout 3 wget -q -O - http://www:8080/" with the flags "--network <executor id>-app" and a JSON result
    Then the outcome is "exited" with exit code 0
    And the result's stdout is "hello from web"

  @needs-networks
  Scenario: Only executions on the same network resolve an alias
    Given I started execution "web" with the flags "--network <executor id>-app --network-alias web" running "sleep 60"
    And execution "neighbour" ran to completion with the flags "--network <executor id>-app" running "nslookup web >/dev/null 2>&1 && echo resolved || echo unknown"
    Then the result's stdout is "resolved"
    When I run "nslookup web >/dev/null 2>&1 && echo resolved || echo unknown" with the flags "--network <executor id>-other" and a JSON result
    Then the outcome is "exited" with exit code 0
    And the result's stdout is "unknown"

  Scenario Outline: An alias that cannot work is refused, names the field, and creates nothing
    When I start execution "<execution>" with the flags "<flags>"
    Then the start fails with INVALID naming the field "<field>"
    And nothing exists for execution "<execution>"

    Examples: aliases no backend could give
      | execution   | flags                                                          | field              |
      | no-network  | --network-alias web                                            | network.aliases    |
      | host-net    | --network host --network-alias web                             | network.aliases    |
      | upper-case  | --network <executor id>-app --network-alias Web                | network.aliases[0] |
      | twice       | --network <executor id>-app --network-alias a --network-alias a | network.aliases[1] |
