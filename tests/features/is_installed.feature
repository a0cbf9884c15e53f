Feature: is_installed - can this backend run work here, right now?
  Before the DMS host schedules work on a backend it asks whether the backend can run anything.
  When the answer is no, the operator needs to know why, and the host must not hang on the question.

  Scenario: The backend is ready to run work
    When I ask whether the backend is installed
    Then it says it is installed
    And the answer came within 5 seconds

  @needs-engine-socket
  Scenario: Nothing exists at the engine's socket path
    When I ask whether the backend is installed through a socket path where nothing exists
    Then it says it is not installed
    And the reason names the socket
    And the answer came within 5 seconds

  @needs-engine-socket
  Scenario: Something that is not Docker listens on the socket and never answers
    Given a unix socket server that accepts connections and never answers
    When I ask whether the backend is installed through that socket
    Then it says it is not installed
    And the reason names the socket
    And the answer came within 5 seconds

  @needs-engine-socket
  Scenario: Something that is not Docker answers garbage on the socket
    Given a unix socket server that answers garbage
    When I ask whether the backend is installed through that socket
    Then it says it is not installed
    And the reason names the socket
    And the answer came within 5 seconds
