@dmsd @caddy @needs-image @needs-networks
Feature: Snoozing droids and waking them on a request
  A droid may have a snooze schedule: daily windows in named time zones, and an idle timeout. It sleeps when a
  window begins and nothing is connected to it, or once it has been idle that long; asleep, its container is
  stopped and its route leads to dmsd's wake handler, which holds the first request, starts the droid, and
  passes that request through once the droid's port answers: the client gets the app's real answer. Activity
  is open connections (a long download keeps a droid awake); dmsd's own health checks never count.

  Background:
    Given a dmsd that routes droids through its own Caddy

  Scenario: Bad schedules are refused with 400 naming the field
    Given a routed droid "picky" serving the page "p"
    Then each of these snooze schedules for "picky" is refused with 400 naming its field:
      | body                                                                   | field          |
      | {"windows":[{"from":"25:00","to":"07:00"}]}                            | windows[0].from |
      | {"windows":[{"from":"22:00","to":"7:00"}]}                             | windows[0].to   |
      | {"windows":[{"from":"08:00","to":"08:00"}]}                            | windows[0].to   |
      | {"windows":[{"from":"22:00","to":"07:00","tz":"Mars/Olympus_Mons"}]}   | windows[0].tz   |
      | {"windows":[{"from":"22:00","to":"07:00","tz":"../../etc/passwd"}]}    | windows[0].tz   |
      | {"windows":[{"from":"22:00","to":"07:00","zone":"UTC"}]}               | windows[0].zone |
      | {"windows":"22:00-07:00"}                                              | windows         |
      | {"idle_timeout_s":-1}                                                  | idle_timeout_s  |
      | {"idle_timeout_s":0}                                                   | idle_timeout_s  |
      | {"idle_timeout_s":99999999}                                            | idle_timeout_s  |
      | {"idle_timeout_s":"600"}                                               | idle_timeout_s  |
      | {"idle":600}                                                           | idle            |
      | not json                                                               | body            |
    And the routed droid "picky" has no snooze schedule
    And the routed droid "picky" is "running"
    And nothing of the routed dmsd is left once it stops

  Scenario: A schedule is shown, and DELETE or an empty body clears it
    Given a routed droid "shown" serving the page "s"
    When the snooze schedule of "shown" is set to {"windows":[{"from":"22:00","to":"07:00","tz":"Europe/Paris"}]}
    Then GET /droids/:id/snooze of "shown" shows the windows 22:00-07:00 Europe/Paris and idle_timeout_s 600
    And the routed droid "shown" shows a next sleep time and no next wake time
    When the snooze schedule of "shown" is deleted
    Then the routed droid "shown" has no snooze schedule
    When the snooze schedule of "shown" is set to {"idle_timeout_s":900}
    And the snooze schedule of "shown" is put with an empty body
    Then the routed droid "shown" has no snooze schedule
    And nothing of the routed dmsd is left once it stops

  Scenario: A snooze window stops the droid and a request wakes it with the real answer
    Given a routed droid "night" serving the page "night-page"
    When "night" gets a snooze window around now in "Europe/Paris"
    Then the routed droid "night" is "snoozed" within 10 s
    And no container of "night" runs within 10 s
    And the status of "night" shows it asleep until the window's end
    And the routed droid "night" stays "snoozed" for 3 s
    When "night" is requested through the proxy
    Then the proxied answer is 200 with "night-page"
    And the routed droid "night" is "running" within 5 s
    And the events of "night" show snoozed -> starting because "woken by a request"
    And nothing of the routed dmsd is left once it stops

  Scenario: An idle timeout stops it, and a long download keeps it awake
    Given a routed droid "lazy" serving the page "lazy-page" and a 24 MiB file "big"
    When the snooze schedule of "lazy" is set to {"idle_timeout_s":2}
    And a client requests "lazy" through the proxy once a second for 6 s
    Then the routed droid "lazy" stayed "running" while the client came back
    When a slow client downloads "/big" from "lazy" through the proxy over about 6 s
    Then the routed droid "lazy" stayed "running" while the download lasted
    And the download got all 24 MiB
    And the routed droid "lazy" is "snoozed" within 10 s
    And no container of "lazy" runs within 10 s
    When "lazy" is requested through the proxy
    Then the proxied answer is 200 with "lazy-page"
    And the routed droid "lazy" is "snoozed" within 10 s
    And nothing of the routed dmsd is left once it stops

  Scenario: An open WebSocket keeps a droid awake, however silent
    Given a routed droid "chat" that upgrades every request to a WebSocket
    When the snooze schedule of "chat" is set to {"idle_timeout_s":2}
    And a WebSocket to "chat" is opened through the proxy and kept silent for 6 s
    Then the routed droid "chat" stayed "running" while the WebSocket was open
    And the routed droid "chat" is "snoozed" within 10 s
    And nothing of the routed dmsd is left once it stops

  Scenario: A rebuild while it sleeps is what a request wakes
    Given a routed droid "dozy" serving the page "old"
    When the snooze schedule of "dozy" is set to {"idle_timeout_s":1}
    Then the routed droid "dozy" is "snoozed" within 10 s
    When a new commit of "dozy" serving the page "new" is deployed
    Then the routed droid "dozy" has 2 releases within 60 s
    And the routed droid "dozy" is "snoozed" within 10 s
    And no container of "dozy" runs within 10 s
    When "dozy" is requested through the proxy
    Then the proxied answer is 200 with "new"
    And nothing of the routed dmsd is left once it stops
