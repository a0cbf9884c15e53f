@dmsd
Feature: dmsd's API holds against another user, against tokens that are not right, and against clients that never finish their request
  dmsd serves many users, each known only by the user_id of a bearer token. A route that names a droid, a job or
  a project checks that the caller owns it before anything else happens, so another user's request is a 404
  that changes nothing, whatever the route. A token must expire, name its user with a string or an integer, and
  carry the audience and issuer dmsd is told to require. A client that never completes its request holds its
  connection only briefly, and one address cannot take the connections everybody else needs.

  Scenario: Bob walks every route of the API against alice's droid while it builds and her running job, and changes nothing
    Given dmsd is running
    And the stack images are made
    And a git repository "slow" whose Dockerfile is
      """
      FROM dms-test/web:latest
      RUN echo "building slowly" && sleep 40  # build <unique>, never from the cache
      CMD echo "slow-v1" > /www/index.html; httpd -f -p "$PORT" -h /www
      """
    And a git repository "site" with the file "README"
      """
      a project whose build sleeps
      """
    And alice created the job "long" for the project "web" and the deployment "l1" of the repository "site" with
      | build command                        | package manager | dist directory |
      | echo started-the-long-one; sleep 300 | none            | .              |
    And the deployment of the job "long" is "l1"
    And the log of the job "long" came to have "started-the-long-one" within 60 seconds
    And alice created the droid "web" from the repository "slow"
    And a git push hook secret "alice-hook-secret-0123456789" is set on alice's droid "web"
    And the droid "web" becomes "building" within 30 seconds
    And I note what alice's droid "web" and her job "long" are
    When bob walks every route of dmsd's route table against alice's droid "web", her job "long" and her project "web"
    Then every route with an :id was walked, and every answer bob got was 404, or 403 and 401 for the push hook
    And bob lists no droid and no job of alice's
    And alice's droid "web" and her job "long" are as noted
    And the droid "web" becomes "running" within 120 seconds
    And since it was noted, alice's droid "web" only finished its build
    And the droid "web" serves "slow-v1"
    When alice calls the push hook of her droid "web" with its secret
    Then the answer is 202
    When alice cancels the job "long"
    Then the answer is 200 with the data "Queued for cancellation"
    And the job "long" becomes "cancelled" within 30 seconds

  Scenario Outline: A token that does not expire, or whose user_id is not a string or an integer, gets nowhere
    Given dmsd is running
    When a client lists the droids with a token whose payload is <payload>
    Then the answer is 401 naming the field "Authorization"
    And the answer says "<says>"

    Examples:
      | payload                                  | says                                   |
      | {"user_id": "alice"}                     | token has no exp                       |
      | {"user_id": "alice", "exp": <past>}      | token expired                          |
      | {"user_id": "alice", "exp": "never"}     | exp must be a number                   |
      | {"user_id": true, "exp": <exp>}          | user_id must be a string or an integer |
      | {"user_id": 1.5, "exp": <exp>}           | user_id must be a string or an integer |
      | {"user_id": null, "exp": <exp>}          | user_id must be a string or an integer |
      | {"user_id": {}, "exp": <exp>}            | user_id must be a string or an integer |
      | {"user_id": [], "exp": <exp>}            | user_id must be a string or an integer |
      | {"user_id": ["alice"], "exp": <exp>}     | user_id must be a string or an integer |
      | {"user_id": "", "exp": <exp>}            | user_id must be 1-128 printable        |
      | {"exp": <exp>}                           | token has no user_id                   |

  Scenario: An integer user_id is a user, the same one as its decimal string
    Given dmsd is running
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD httpd -f -p "$PORT" -h /www
      """
    And 42 created the droid "web" from the repository "web"
    When a client lists the droids with a token whose payload is {"user_id": 42, "exp": <exp>}
    Then the answer is 200
    And 42's droids are "web"

  Scenario: With DMS_JWT_REQUIRE_EXP=0 a token without exp is accepted, and an expired one still is not
    Given dmsd is running with the settings
      | setting             | value |
      | DMS_JWT_REQUIRE_EXP | 0     |
    When a client lists the droids with a token whose payload is {"user_id": "alice"}
    Then the answer is 200 and lists no droids
    When a client lists the droids with a token whose payload is {"user_id": "alice", "exp": <past>}
    Then the answer is 401 naming the field "Authorization"

  Scenario: With an audience and an issuer set, a token must carry both
    Given dmsd is running with the settings
      | setting          | value              |
      | DMS_JWT_AUDIENCE | dms-prod           |
      | DMS_JWT_ISSUER   | https://id.example |
    When a client lists the droids with a token whose payload is {"user_id": "alice", "exp": <exp>, "iss": "https://id.example"}
    Then the answer is 401 naming the field "Authorization"
    And the answer says "audience"
    When a client lists the droids with a token whose payload is {"user_id": "alice", "exp": <exp>, "aud": "dms-test", "iss": "https://id.example"}
    Then the answer is 401 naming the field "Authorization"
    When a client lists the droids with a token whose payload is {"user_id": "alice", "exp": <exp>, "aud": "dms-prod"}
    Then the answer is 401 naming the field "Authorization"
    And the answer says "issuer"
    When a client lists the droids with a token whose payload is {"user_id": "alice", "exp": <exp>, "aud": "dms-prod", "iss": "https://id.example"}
    Then the answer is 200 and lists no droids
    When a client lists the droids with a token whose payload is {"user_id": "alice", "exp": <exp>, "aud": ["other", "dms-prod"], "iss": "https://id.example"}
    Then the answer is 200 and lists no droids
    When a client lists the droids with a token minted by dmsctl for "alice" with the settings of this dmsd
    Then the answer is 200 and lists no droids

  Scenario: Requests that are never completed, from one address, neither wait out an authorised client nor keep their connections
    Given dmsd is running with the settings
      | setting                    | value |
      | DMS_HTTP_REQUEST_TIMEOUT_S | 2     |
    And the stack images are made
    And a git repository "site" with the file "README"
      """
      a project whose build sleeps
      """
    And alice created the job "long" for the project "web" and the deployment "l1" of the repository "site" with
      | build command                        | package manager | dist directory |
      | echo started-the-long-one; sleep 300 | none            | .              |
    And the log of the job "long" came to have "started-the-long-one" within 60 seconds
    When alice follows the log of the job "long"
    And an attacker on another address holds 1100 half-sent requests without a token
    Then alice, from 127.0.0.1, lists her droids within 15 seconds
    And every connection of the attacker is closed by dmsd within 30 seconds
    And the job log follower is still open
    When alice cancels the job "long"
    Then the job log follower ends by itself within 30 seconds
    And the job log follower showed "cancelled"
