Feature: start - begin one execution from a request
  A client starts an execution under an id of its choosing. The execution runs exactly once, everything it
  creates says whose it is, and a request that cannot work is refused before anything exists.

  @needs-labels
  Scenario: A started job runs and its container says whose it is
    When I start execution "e1" of job "j1" running "sleep 30"
    Then the start succeeds
    And execution "e1" is running
    And the container of execution "e1" carries the labels
      | label            | value         |
      | io.dms.managed   | true          |
      | io.dms.executor  | <executor id> |
      | io.dms.job       | j1            |
      | io.dms.execution | e1            |
      | io.dms.role      | job           |

  Scenario: Starting an execution that is still running is refused
    Given I started execution "e1" running "sleep 30"
    When I start execution "e1" running "echo a second copy"
    Then the start fails with ALREADY_STARTED
    And execution "e1" is running

  Scenario: Starting an execution that already finished does not run it again
    Given a marker file the job can append to
    And execution "e1" ran to completion running "echo ran >> $MARK/runs"
    When I start execution "e1" running "echo ran >> $MARK/runs"
    Then the start fails with ALREADY_COMPLETE
    And the marker file says the job ran exactly once

  Scenario Outline: An invalid request is refused, names the field, and creates nothing
    When I start execution "<execution>" with the flags "<flags>"
    Then the start fails with INVALID naming the field "<field>"
    And nothing exists for execution "<execution>"

    Examples: flags that cannot be right anywhere
      | execution | flags                                 | field                  |
      | bad-env   | --env 1BAD=x                          | engine.env[0]          |
      | bad-mem   | --memory 1m                           | resources.memory_bytes |
      | bad-label | --label io.dms.executor=someone-else  | labels[0]              |
      | bad-wd    | --workdir relative/dir                | engine.working_dir     |

    @needs-image
    Examples: image references no engine would accept
      | execution | flags                    | field        |
      | empty-ref | --image ''               | engine.image |
      | bad-image | --image UPPER/Case:x     | engine.image |

  Scenario Outline: A --publish that is not a port is a usage error, and creates nothing
    When I start execution "<execution>" with the flags "--publish <spec>"
    Then dms-exec exited with 2
    And nothing exists for execution "<execution>"

    Examples: port specs dms-exec used to read as something else
      | execution  | spec     |
      | host-word  | abc:80   |
      | host-big   | 70000:80 |
      | ctr-suffix | 80x      |
      | four-parts | 1:2:3:4  |

  Scenario: A request with a misspelt key is refused, naming the key
    When I start execution "typo" from the JSON spec
      """
      {"engine": {"cmd": ["true"], "entrypont": ["sh"]}, "timeout_ms": 1000}
      """
    Then the start fails with INVALID naming the field "engine.entrypont"
    And nothing exists for execution "typo"

  @needs-image
  Scenario: A request without an image is refused by a backend that runs images
    When I start execution "no-image" from the JSON spec
      """
      {"engine": {"cmd": ["true"]}}
      """
    Then the start fails with INVALID naming the field "engine.image"
    And nothing exists for execution "no-image"

  @needs-image
  Scenario: An image that is neither present nor pullable gives a clear error
    When I start execution "e1" from the image "dms-test/does-not-exist:latest"
    Then the start fails with IMAGE naming the field "engine.image"
    And the error message mentions "dms-test/does-not-exist:latest"
    And the error message mentions "not present locally"
    And the error message mentions "pull failed"
    And nothing exists for execution "e1" but its state
    When I wait for execution "e1"
    Then the outcome is "failed"
    And the result's error mentions "not present locally"

  Scenario: A program that does not exist fails the start, and the result names it
    When I start execution "e1" with the entrypoint "/no/such/program"
    Then the start fails with START_FAILED naming the field "engine.entrypoint"
    And the error message mentions "/no/such/program"
    When I wait for execution "e1"
    Then the outcome is "failed"
    And the result's error mentions "/no/such/program"
    And dms-exec exited with 127

  Scenario: Two clients start the same execution at once and exactly one wins
    Given a marker file the job can append to
    When 4 clients start execution "e1" at the same time running "echo ran >> $MARK/runs; sleep 2"
    Then exactly one start succeeds and the others fail with ALREADY_STARTED
    When I wait for execution "e1"
    Then the outcome is "exited" with exit code 0
    And the marker file says the job ran exactly once

  @needs-networks
  Scenario: Executions started at once on a network nobody made yet all run, on one network
    When 4 clients start executions at the same time on the network "<executor id>-shared" running "sleep 30"
    Then every start succeeds
    And exactly one network named "<executor id>-shared" is left, carrying this executor's label

  @needs-image
  Scenario: While its image is being pulled, an execution is preparing
    Given a registry on 127.0.0.1 that accepts connections and never answers
    And a client is starting execution "e1" from an image on that registry
    When the registry has been asked for the image
    Then execution "e1" is preparing
