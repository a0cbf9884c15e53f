@dmsd @caddy @needs-image @needs-networks
Feature: Routing droids by name through Caddy
  dmsd runs a Caddy of its own and gives every droid a route, so that http://<name>.localhost:<proxy port>/
  reaches the droid's container on its droid network. Routes change one at a time through Caddy's admin API, never by
  restarting it. Deploys, restarts, env changes and rollbacks all swap containers the same way: the new one
  starts, answers a health check, the route moves to it, requests still in flight to the old one finish, and
  only then does the old one stop. A failure on the way leaves the old one serving.

  Background:
    Given a dmsd that routes droids through its own Caddy

  Scenario: A droid is reached by its name
    Given a routed droid "hello" serving the page "hello-v1"
    Then "hello" answers 200 with "hello-v1" through the proxy
    And the routed droid "hello" shows the URL of its route
    And the route of "hello" dials its container on its droid network
    And a host no droid has answers 404 through the proxy
    And nothing of the routed dmsd is left once it stops

  Scenario: An env change swaps containers without a failed request
    Given a routed droid "web" serving the page "v1"
    When a client requests "web" through the proxy in a loop
    And the env of "web" is changed to PAGE=v2
    And "web" answers 200 with "v2" through the proxy within 30 s
    And the routed droid "web" is restarted through the API and its container replaced within 30 s
    Then every answer of the loop was a 200, with the pages "v1,v2" in that order
    And only one container of "web" runs
    And nothing of the routed dmsd is left once it stops

  Scenario: A rebuild and a rollback swap containers without a failed request
    Given a routed droid "app" serving the page "r1"
    When a client requests "app" through the proxy in a loop
    And a new commit of "app" serving the page "r2" is deployed
    And "app" answers 200 with "r2" through the proxy within 60 s
    And "app" is rolled back to release 1
    And "app" answers 200 with "r1" through the proxy within 30 s
    Then every answer of the loop was a 200, with the pages "r1,r2,r1" in that order
    And nothing of the routed dmsd is left once it stops

  Scenario: A download in flight when the container is replaced runs to its end
    Given a routed droid "files" serving the page "f1" and a 24 MiB file "big"
    When a slow client downloads "/big" from "files" through the proxy over about 6 s while the env of "files" is changed to PAGE=f2
    Then the download got all 24 MiB
    And "files" answers 200 with "f2" through the proxy
    And only one container of "files" runs
    And nothing of the routed dmsd is left once it stops

  Scenario: A new release that never answers leaves the old one serving
    Given a routed droid "steady" serving the page "good"
    When a client requests "steady" through the proxy in a loop
    And a new commit of "steady" whose container exits at once is deployed
    Then the routed droid "steady" is "running" because "still serving release 1" within 90 s
    And every answer of the loop was a 200, with the pages "good" in that order
    And nothing of the routed dmsd is left once it stops

  Scenario: A deleted droid's route is gone
    Given a routed droid "gone" serving the page "bye"
    When the routed droid "gone" is deleted through the API
    Then Caddy has no route for "gone"
    And a request for "gone" answers 404 through the proxy
    And nothing of the routed dmsd is left once it stops

  Scenario: Caddy is restarted with every route, and a dmsd restart rebuilds them from the store
    Given a routed droid "sturdy" serving the page "still-here"
    When Caddy is killed
    Then "sturdy" answers 200 with "still-here" through the proxy within 10 s
    And Caddy runs with a new pid
    When the routed dmsd is restarted
    Then "sturdy" answers 200 with "still-here" through the proxy within 10 s
    And nothing of the routed dmsd is left once it stops
