@dmsd
Feature: dmsd compose droids - one droid, several containers from a compose file
  A repository with a compose.yaml at its root becomes a droid of several services: each service with `build`
  is built, each runs in its own container on a network of the droid's own where it is reached by its service
  name, one service is routed through Caddy, and a redeploy replaces what changed without a failed request and
  leaves the rest alone. Nothing of it is left after a delete.

  Background:
    Given a dmsd that routes droids through its own Caddy
    And a git repository "shop" holding the compose file
      """
      services:
        web:
          build: ./web
          ports: ["8080"]
          environment:
            PAGE: front
        worker:
          image: dms-stack/python:latest
          command: ["python3", "-u", "-c", "import time, urllib.request as u\nwhile True:\n  try: print(u.urlopen('http://web:8080/', timeout=2).read().decode().strip())\n  except Exception as e: print('error', e)\n  time.sleep(1)"]
          depends_on: [web]
          restart: always
      """
    And the repository "shop" has the file "web/Dockerfile"
      """
      FROM dms-test/web:latest
      """

  Scenario: Each service runs in its own container; the routed one answers, the others reach it by name
    When the compose droid "shop" is created from the repository "shop"
    Then the routed droid "shop" is "running" within 90 s
    And "shop" answers 200 with "front" through the proxy within 30 s
    And the droid "shop" shows the services "web" (routed) and "worker", each "running"
    And the service "worker" of "shop" runs in its own container on the droid's network
    And the logs of the service "worker" of "shop" say "front" within 30 s
    And nothing of the routed dmsd is left once it stops

  Scenario: A service of another droid is not reachable by name
    Given a git repository "other" holding the compose file
      """
      services:
        probe:
          image: dms-stack/python:latest
          ports: ["8080"]
          working_dir: /tmp
          command: ["sh", "-c", "python3 -c \"import socket\nsocket.gethostbyname('probe')\ntry: socket.gethostbyname('web'); print('reached')\nexcept OSError: print('isolated')\" > index.html; exec python3 -m http.server 8080"]
      """
    When the compose droid "shop" is created from the repository "shop"
    And the routed droid "shop" is "running" within 90 s
    And the compose droid "other" is created from the repository "other"
    Then the routed droid "other" is "running" within 90 s
    And "other" answers 200 with "isolated" through the proxy within 30 s
    And nothing of the routed dmsd is left once it stops

  Scenario: A redeploy that changes the routed service swaps it without a failed request and leaves the worker alone
    Given the compose droid "shop" is created from the repository "shop"
    And the routed droid "shop" is "running" within 90 s
    And I note the container of the service "worker" of "shop"
    When a client requests "shop" through the proxy in a loop
    And a new commit of "shop" changes "PAGE: front" to "PAGE: back" in its compose file and is deployed
    And "shop" answers 200 with "back" through the proxy within 60 s
    Then every answer of the loop was a 200, with the pages "front,back" in that order
    And the service "worker" of "shop" still runs in the noted container
    And only one container of the service "web" of "shop" runs
    And nothing of the routed dmsd is left once it stops

  Scenario: A change of one service's config replaces that service only
    Given the compose droid "shop" is created from the repository "shop"
    And the routed droid "shop" is "running" within 90 s
    And I note the container of the service "worker" of "shop"
    And I note the container of the droid "shop" as its routed service
    When a new commit of "shop" changes "restart: always" to "restart: unless-stopped" in its compose file and is deployed
    Then the service "worker" of "shop" runs in a new container within 60 s
    And the routed service of "shop" still runs in the noted container
    And the logs of the service "worker" of "shop" say "front" within 30 s
    And nothing of the routed dmsd is left once it stops

  Scenario: A service starts once what it depends on is healthy
    Given a git repository "ordered" holding the compose file
      """
      services:
        web:
          image: dms-test/web:latest
          ports: ["8080"]
          depends_on:
            db: {condition: service_healthy}
        db:
          image: dms-test/busybox:latest
          command: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 600"]
          healthcheck:
            test: ["CMD", "test", "-f", "/tmp/ready"]
            interval: 200ms
      """
    When the compose droid "ordered" is created from the repository "ordered"
    Then the routed droid "ordered" is "running" within 90 s
    And the service "web" of "ordered" started at least 2.5 s after the service "db"
    And nothing of the routed dmsd is left once it stops

  Scenario: A dependency that never becomes healthy fails the release, naming both
    Given a git repository "sick" holding the compose file
      """
      services:
        web:
          image: dms-test/web:latest
          ports: ["8080"]
          depends_on:
            db: {condition: service_healthy}
        db:
          image: dms-test/busybox:latest
          command: ["sleep", "600"]
          healthcheck:
            test: ["CMD", "false"]
            interval: 200ms
            retries: 2
      """
    When the compose droid "sick" is created from the repository "sick"
    Then the routed droid "sick" is "failed" because "service web depends on db being healthy" within 90 s
    And nothing of the routed dmsd is left once it stops

  Scenario: A restart replaces every service, and a rollback restores every service of the release
    Given the compose droid "shop" is created from the repository "shop"
    And the routed droid "shop" is "running" within 90 s
    And I note the container of the service "worker" of "shop"
    When "shop" is restarted through the API
    Then the service "worker" of "shop" runs in a new container within 60 s
    When a new commit of "shop" changes "time.sleep(1)" to "time.sleep(0.5)" in its compose file and is deployed
    And a new commit of "shop" changes "PAGE: front" to "PAGE: back" in its compose file and is deployed
    And "shop" answers 200 with "back" through the proxy within 90 s
    And I note the container of the service "worker" of "shop"
    And "shop" is rolled back to release 1
    Then "shop" answers 200 with "front" through the proxy within 60 s
    And the service "worker" of "shop" runs in a new container within 60 s
    And the droid "shop" shows the services "web" (routed) and "worker", each "running"
    And nothing of the routed dmsd is left once it stops

  Scenario: Snooze stops every service, and a request wakes them, what the routed one needs first
    Given a git repository "dozy" holding the compose file
      """
      services:
        web:
          image: dms-test/web:latest
          ports: ["8080"]
          environment: {PAGE: awake}
          depends_on:
            db: {condition: service_healthy}
        db:
          image: dms-test/busybox:latest
          command: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 600"]
          healthcheck:
            test: ["CMD", "test", "-f", "/tmp/ready"]
            interval: 200ms
      """
    And the compose droid "dozy" is created from the repository "dozy"
    And the routed droid "dozy" is "running" within 90 s
    When the snooze schedule of "dozy" is set to {"idle_timeout_s":1}
    Then the routed droid "dozy" is "snoozed" within 30 s
    And no container of "dozy" runs within 10 s
    When "dozy" is requested through the proxy
    Then the proxied answer is 200 with "awake"
    And the service "web" of "dozy" started at least 2.5 s after the service "db"
    And nothing of the routed dmsd is left once it stops

  Scenario: An image service may name only what the tenant rules allow
    Given a git repository "foreign" holding the compose file
      """
      services:
        web:
          image: dms-test/web:latest
          ports: ["8080"]
        side:
          image: debian:12
      """
    When the compose droid "foreign" is created from the repository "foreign"
    Then the routed droid "foreign" is "failed" because "services.side.image" within 60 s
    And nothing of the routed dmsd is left once it stops

  Scenario: A droid of workers only runs every service and routes nothing
    Given a git repository "crew" holding the compose file
      """
      x-dms: {route: false}
      services:
        pinger:
          image: dms-test/busybox:latest
          command: ["sh", "-c", "while :; do echo ping; sleep 1; done"]
        ponger:
          image: dms-test/busybox:latest
          command: ["sh", "-c", "while :; do echo pong; sleep 1; done"]
      """
    When the compose droid "crew" is created from the repository "crew"
    Then the routed droid "crew" is "running" within 60 s
    And the droid "crew" shows the services "pinger" and "ponger", each "running", none routed
    And the logs of the service "pinger" of "crew" say "ping" within 20 s
    And the logs of the service "ponger" of "crew" say "pong" within 20 s
    And a request for "crew" answers 404 through the proxy
    And nothing of the routed dmsd is left once it stops

  Scenario: A service is built from the stage its build names
    Given a git repository "staged" holding the compose file
      """
      services:
        web:
          build: {context: ., dockerfile: web.Dockerfile, target: dev}
          ports: ["8080"]
      """
    And the repository "staged" has the file "web.Dockerfile"
      """
      FROM dms-test/web:latest AS dev
      ENV PAGE=dev-stage
      FROM dms-test/web:latest AS prod
      ENV PAGE=prod-stage
      """
    When the compose droid "staged" is created from the repository "staged"
    Then the routed droid "staged" is "running" within 90 s
    And "staged" answers 200 with "dev-stage" through the proxy within 30 s
    And nothing of the routed dmsd is left once it stops

  Scenario: A path of the repository is mounted read-only, from a copy that later commits do not change
    Given a git repository "site" holding the compose file
      """
      services:
        web:
          image: dms-test/web:latest
          ports: ["8080"]
          command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
          volumes: ["./pages:/www:ro"]
      """
    And the repository "site" has the file "pages/index.html"
      """
      from-the-repo
      """
    When the compose droid "site" is created from the repository "site"
    Then the routed droid "site" is "running" within 90 s
    And "site" answers 200 with "from-the-repo" through the proxy within 30 s
    And the service "web" of "site" mounts "/www" read-only
    When a new commit of "site" changes the file "pages/index.html" to "changed" and is deployed
    Then "site" answers 200 with "changed" through the proxy within 60 s
    And nothing of the routed dmsd is left once it stops

  Scenario: Stop, start and a dmsd restart cover every service
    Given the compose droid "shop" is created from the repository "shop"
    And the routed droid "shop" is "running" within 90 s
    When "shop" is stopped through the API
    Then no container of "shop" runs within 30 s
    When "shop" is started through the API
    Then the routed droid "shop" is "running" within 60 s
    And the droid "shop" shows the services "web" (routed) and "worker", each "running"
    And I note the container of the service "worker" of "shop"
    When the routed dmsd is restarted
    Then "shop" answers 200 with "front" through the proxy within 30 s
    And the service "worker" of "shop" still runs in the noted container
    And nothing of the routed dmsd is left once it stops

  Scenario: A crashing service is restarted by its policy, and the droid says how often
    Given a git repository "flaky" holding the compose file
      """
      services:
        web:
          image: dms-test/web:latest
          ports: ["8080"]
        job:
          image: dms-test/busybox:latest
          command: ["sh", "-c", "echo attempt; sleep 1; exit 3"]
          restart: on-failure
      """
    When the compose droid "flaky" is created from the repository "flaky"
    Then the routed droid "flaky" is "running" within 90 s
    And the service "job" of "flaky" has been restarted at least 2 times within 30 s
    And nothing of the routed dmsd is left once it stops

  Scenario: Delete removes every container, image, volume and the network of a compose droid
    Given a git repository "vol" holding the compose file
      """
      services:
        web:
          build: ./web
          ports: ["8080"]
        writer:
          image: dms-test/busybox:latest
          command: ["sh", "-c", "date > /data/stamp; sleep 600"]
          volumes: ["data:/data"]
      volumes:
        data: {}
      """
    And the repository "vol" has the file "web/Dockerfile"
      """
      FROM dms-test/web:latest
      ENV PAGE=vol
      """
    And the compose droid "vol" is created from the repository "vol"
    And the routed droid "vol" is "running" within 90 s
    And the engine holds the volume "data" and the network of the compose droid "vol"
    When the routed droid "vol" is deleted through the API
    Then the engine holds nothing of the compose droid "vol" within 30 s
    And nothing of the routed dmsd is left once it stops

  Scenario: Another user can neither read a compose droid's service logs nor see its services
    Given the compose droid "shop" is created from the repository "shop"
    And the routed droid "shop" is "running" within 90 s
    Then bob's request for the logs of the service "worker" of "shop" is answered 404
    And bob's request for the droid "shop" is answered 404
    And nothing of the routed dmsd is left once it stops

  Scenario: The compose-app example deploys: an API, its frontend, a worker that waits for it, a volume
    Given a git repository "example" holding the example "compose-app"
    When the compose droid "example" is created from the repository "example"
    Then the routed droid "example" is "running" within 240 s
    And "example" answers "/api/hello" with JSON holding "message" through the proxy within 30 s
    And the droid "example" shows the services "api" (routed) and "worker", each "running"
    And "example" answers "/api/worker" with JSON holding "beats" through the proxy within 60 s
    And nothing of the routed dmsd is left once it stops

  Scenario Outline: A compose file with a key dms does not run fails the build naming the key
    Given a git repository "bad" holding the compose file
      """
      services:
        web:
          image: dms-test/web:latest
          ports: ["8080"]
          <key>
      """
    When the compose droid "bad" is created from the repository "bad"
    Then the routed droid "bad" is "failed" because "<path>" within 60 s
    And nothing of the routed dmsd is left once it stops

    Examples:
      | key                         | path                          |
      | network_mode: host          | services.web.network_mode     |
      | privileged: true            | services.web.privileged       |
      | volumes: ["/etc:/host-etc"] | services.web.volumes[0]       |
      | volumes: ["./gone:/x:ro"]   | services.web.volumes[0]       |
      | cap_add: [SYS_ADMIN]        | services.web.cap_add          |
      | pid: host                   | services.web.pid              |
