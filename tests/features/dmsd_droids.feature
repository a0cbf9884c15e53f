@dmsd
Feature: dmsd droids - deploy an app from its git repository and look after it over the HTTP API
  Alice keeps her app in a git repository with a Dockerfile. She asks dmsd for a droid built from it and finds
  it running; she changes its configuration, renames it and deletes it. A droid is its owner's alone: other
  users cannot see or touch it, and a request without a valid token gets nowhere.

  Background:
    Given dmsd is running
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=web-v1
      CMD trap 'echo "stopping"; exit 0' TERM; echo "GREETING is ${GREETING:-unset}"; echo "$PAGE" > /www/index.html; httpd -f -p "$PORT" -h /www & wait
      """

  Scenario: A new droid is built from its repository and runs
    When alice creates the droid "web" from the repository "web"
    Then the answer is 201 and the droid is "pending"
    And the droid "web" becomes "running" within 60 seconds
    And the droid "web" serves "web-v1"
    And the droid "web" is on the branch "main" at the latest commit of the repository "web"
    And the droid "web" runs in exactly one container, labelled as this dmsd's
    And alice's droids are "web"

  Scenario: A name is free until a droid takes it, for every user
    Given alice created the droid "web" from the repository "web"
    When alice asks whether the name "web" is available
    Then the answer is 200 and says the name is taken
    When alice asks whether the name "blog" is available
    Then the answer is 200 and says the name is free
    When alice asks whether the name "No_Such-Name!" is available
    Then the answer is 400 naming the field "name"
    When bob creates the droid "web" from the repository "web"
    Then the answer is 409 naming the field "name"
    And bob has no droids

  Scenario Outline: A droid that cannot be right is refused, the error names the field, and nothing is created
    When alice creates a droid with the body
      """
      <body>
      """
    Then the answer is 400 naming the field "<field>"
    And alice has no droids

    Examples: what is wrong
      | body                                                                                          | field                 |
      | {"repo": "<repo web>"}                                                                        | name                  |
      | {"name": "Web!", "repo": "<repo web>"}                                                        | name                  |
      | {"name": "-web", "repo": "<repo web>"}                                                        | name                  |
      | {"name": "web"}                                                                               | repo                  |
      | {"name": "web", "repo": "not a repository"}                                                   | repo                  |
      | {"name": "web", "repo": "<repo web>", "branch": "a..b"}                                       | branch                |
      | {"name": "web", "repo": "<repo web>", "commit": "not-hex"}                                    | commit                |
      | {"name": "web", "repo": "<repo web>", "port": 70000}                                          | port                  |
      | {"name": "web", "repo": "<repo web>", "env": {"1ST": "x"}}                                    | env.1ST               |
      | {"name": "web", "repo": "<repo web>", "env": {"COUNT": 1}}                                    | env.COUNT             |
      | {"name": "web", "repo": "<repo web>", "port": 8080, "env": {"PORT": "9090"}}                  | env.PORT              |
      | {"name": "web", "repo": "<repo web>", "volumes": [{"name": "data", "mount_path": "data"}]}    | volumes[0].mount_path |
      | {"name": "web", "repo": "<repo web>", "colour": "blue"}                                       | colour                |
      | {"name": "web", "repo": "<repo web>"                                                          | body                  |

  Scenario: Users see and change only their own droids
    Given alice has a running droid "web" from the repository "web"
    And I note the container of the droid "web"
    Then bob has no droids
    And every one of these requests by bob about the droid "web" is answered 404
      | method | path                          | body                           |
      | GET    | /droids/<droid web>           |                                |
      | GET    | /droids/<droid web>/status    |                                |
      | GET    | /droids/<droid web>/events    |                                |
      | GET    | /droids/<droid web>/logs      |                                |
      | PATCH  | /droids/<droid web>           | {"env": {"GREETING": "bob"}}   |
      | POST   | /droids/<droid web>/stop      |                                |
      | POST   | /droids/<droid web>/restart   |                                |
      | DELETE | /droids/<droid web>           |                                |
    And alice's droids are "web"
    And the droid "web" is "running" in the noted container

  Scenario Outline: A request without a valid bearer token is refused
    When someone lists the droids with <credentials>
    Then the answer is 401 naming the field "Authorization"

    Examples:
      | credentials                             |
      | no Authorization header                 |
      | a bearer token that is not a JWT        |
      | a token signed with another secret      |
      | a token that has expired                |
      | a token without a user_id               |
      | a token signed with HS512               |
      | basic credentials instead of a bearer   |

  Scenario: Any user_id in a valid token is a user, a number too
    When someone lists the droids with a token for the numeric user_id 42
    Then the answer is 200 and lists no droids

  Scenario: Changing the env restarts the droid with the new env
    Given alice has a running droid "web" from the repository "web" with the env
      | name     | value |
      | GREETING | hello |
    And the current run of the droid "web" has printed "GREETING is hello"
    And I note the container of the droid "web"
    When alice changes the droid "web" with
      """
      {"env": {"GREETING": "hola"}}
      """
    Then the answer is 200
    And the droid "web" runs in a new container within 30 seconds
    And the current run of the droid "web" has printed "GREETING is hola"
    And the droid "web" serves "web-v1"
    And the droid "web" is at release 1
    And the droid "web" has an event saying "configuration changed (env)"

  Scenario: Changing the port restarts the droid listening on the new port
    Given alice has a running droid "web" from the repository "web"
    And I note the container of the droid "web"
    When alice changes the droid "web" with
      """
      {"port": 9090}
      """
    Then the answer is 200
    And the droid "web" runs in a new container within 30 seconds
    And the droid "web" serves "web-v1"
    And the droid "web" listens on port 9090 in its container

  Scenario: Renaming a droid frees the old name and does not restart it
    Given alice has a running droid "web" from the repository "web"
    And alice has a running droid "blog" from the repository "web"
    And I note the container of the droid "web"
    When alice changes the droid "web" with
      """
      {"name": "site"}
      """
    Then the answer is 200 and the droid's name is "site"
    And the name "web" is free and the name "site" is taken
    And the droid "site" is "running" in the noted container
    When alice changes the droid "site" with
      """
      {"name": "blog"}
      """
    Then the answer is 409 naming the field "name"
    And alice's droids are "blog, site"

  Scenario: Deleting a droid removes its container, image, volumes and data
    When alice creates a droid with the body
      """
      {"name": "notes", "repo": "<repo web>", "volumes": [{"name": "data", "mount_path": "/data"}]}
      """
    Then the answer is 201 and the droid is "pending"
    And the droid "notes" becomes "running" within 60 seconds
    And the engine holds a container, an image and the volume "data" of the droid "notes"
    And the droid "notes" has a data directory
    When alice deletes the droid "notes"
    Then the answer is 200
    And reading the droid "notes" is answered 404
    And the engine holds no container, image or volume of the droid "notes"
    And the droid "notes" has no data directory
    And the name "notes" is free
