Feature: cleanup - remove everything an executor created
  An operator (or a restarted host) removes everything one executor created: containers running or not,
  networks, volumes and execution state, found by the executor's labels and nothing else. What others
  created, even under a similar name, survives. Cleaning twice is harmless, and the counts say what happened.

  @needs-labels @needs-networks @needs-volumes
  Scenario: Cleanup removes what carries our labels, running or not, and nothing else
    Given I started execution "r1" with the flags "--network <executor id>-net --volume <executor id>-vol:/data" running "sleep 60"
    And execution "k1" ran to completion with the flags "--keep" running "true"
    And a container, a network and a volume named like ours but without our labels
    And a container, a network and a volume labelled as another executor's
    When I clean up
    Then cleanup reports 2 containers, 1 networks, 1 volumes and 0 errors
    And nothing carries our executor label any more
    And the container, the network and the volume without our labels still exist
    And the container, the network and the volume of the other executor still exist

  Scenario: Cleanup stops running jobs and is idempotent
    Given I started execution "r1" running "sleep 60"
    And execution "k1" ran to completion running "true"
    When I clean up
    Then cleanup reports 1 containers, 0 networks, 0 volumes and 0 errors
    And cleanup reports 2 execution state directories removed
    And nothing exists for execution "r1"
    And nothing exists for execution "k1"
    When I clean up again
    Then cleanup reports 0 containers, 0 networks, 0 volumes and 0 errors
    And cleanup reports 0 execution state directories removed
