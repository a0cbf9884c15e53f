@dmsd
Feature: Repositories - local paths and the network
  A repository is the user's to name, so dmsd decides what it reads on their behalf. A local path or file://
  URL is refused unless the operator lists the directories local repositories may come from
  (DMS_LOCAL_REPO_ROOTS), and then only what resolves beneath them, symlinks and ".." included. Git connects
  only to public addresses unless the operator permits a network (DMS_GIT_ALLOW_NETS): a refused address is
  never connected to, so a check answers the same whatever listens there. A remote that stops answering fails
  after DMS_GIT_TIMEOUT_S instead of holding a build forever.

  Scenario: By default a local repository is refused at create, at job create and at the git check
    Given dmsd is running with the settings
      | setting              | value   |
      | DMS_LOCAL_REPO_ROOTS | (unset) |
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "web" from the repository "web"
    Then the answer is 403 naming the field "repo" and the setting DMS_LOCAL_REPO_ROOTS
    When alice creates a droid with the body
      """
      {"name": "web", "repo": "file://<repo web>"}
      """
    Then the answer is 403 naming the field "repo" and the setting DMS_LOCAL_REPO_ROOTS
    When alice checks the repository "<repo web>"
    Then the answer is 403 naming the field "repo" and the setting DMS_LOCAL_REPO_ROOTS
    When alice posts a build job of the repository "<repo web>"
    Then the answer is 403 naming the field "project_repo_url" and the setting DMS_LOCAL_REPO_ROOTS
    And alice has no droids
    And dmsd cloned nothing and alice has no jobs

  Scenario: Beneath a permitted root the same repository deploys
    Given dmsd is running with local repositories beneath the scenario's repositories only
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=local
      CMD trap 'exit 0' TERM; echo "$PAGE" > /www/index.html; httpd -f -p "$PORT" -h /www & wait
      """
    When alice checks the repository "file://<repo web>"
    Then the answer is 200 and says the repository is reachable
    When alice creates the droid "web" from the repository "web"
    Then the answer is 201 and the droid is "pending"
    And the droid "web" becomes "running" within 60 seconds
    And the droid "web" serves "local"

  Scenario: A path that leaves the root through a symlink or ".." is refused, and nothing is cloned
    Given dmsd is running with local repositories beneath the scenario's repositories only
    And a git repository "secret" outside the repositories whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=secret
      """
    And the repositories hold "link", a symlink to the repository "secret" outside them
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      """
    When alice creates the droid "stolen" from the repository "link"
    Then the answer is 403 naming the field "repo" and the setting DMS_LOCAL_REPO_ROOTS
    When alice creates a droid with the body
      """
      {"name": "stolen", "repo": "<repo web>/../../outside/secret.git"}
      """
    Then the answer is 403 naming the field "repo" and the setting DMS_LOCAL_REPO_ROOTS
    When alice checks the repository "<repo link>"
    Then the answer is 403 naming the field "repo" and the setting DMS_LOCAL_REPO_ROOTS
    When alice posts a build job of the repository "file://<repo link>"
    Then the answer is 403 naming the field "project_repo_url" and the setting DMS_LOCAL_REPO_ROOTS
    And alice has no droids
    And dmsd cloned nothing and alice has no jobs
    When alice creates the droid "web" from the repository "web"
    Then the answer is 201 and the droid is "pending"

  Scenario: A loopback port looks the same to a git check whether it is open or closed, and is never connected to
    Given dmsd is running
    And a TCP listener on 127.0.0.1 that counts the connections it is offered
    When alice checks the git URL "http://127.0.0.1:<listener port>/x.git"
    Then the answer says the repository is refused, naming DMS_GIT_ALLOW_NETS
    When alice checks the git URL "http://127.0.0.1:<closed port>/x.git"
    Then the answer says the repository is refused, naming DMS_GIT_ALLOW_NETS
    And the answers to the last 2 checks are the same but for the URL
    When alice checks the git URL "http://localhost:<listener port>/x.git"
    Then the answer says the repository is refused, naming DMS_GIT_ALLOW_NETS
    When alice checks the git URL "ssh://git@127.0.0.1:<listener port>/x.git"
    Then the answer says the repository is refused, naming DMS_GIT_ALLOW_NETS
    When alice checks the git URL "git://127.0.0.1:<listener port>/x.git"
    Then the answer says the repository is refused, naming DMS_GIT_ALLOW_NETS
    When alice checks the git URL "https://[::ffff:127.0.0.1]:<listener port>/x.git"
    Then the answer says the repository is refused, naming DMS_GIT_ALLOW_NETS
    And the listener was offered no connection

  Scenario: A droid whose repository is on a refused address fails without a retry, and nothing is connected to
    Given dmsd is running
    And a TCP listener on 127.0.0.1 that counts the connections it is offered
    When alice creates the droid "inside" from the git URL "http://127.0.0.1:<listener port>/x.git"
    Then the answer is 201 and the droid is "pending"
    And the droid "inside" becomes "failed" within 30 seconds
    And the reason of the droid "inside" mentions "DMS_GIT_ALLOW_NETS"
    And 3 seconds later the droid "inside" is still "failed" with exactly one build, "failed"
    And the listener was offered no connection

  Scenario: With loopback permitted, a droid deploys from a smart-HTTP git server on 127.0.0.1
    Given dmsd is running with the settings
      | setting            | value       |
      | DMS_GIT_ALLOW_NETS | 127.0.0.0/8 |
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=over-http
      CMD trap 'exit 0' TERM; echo "$PAGE" > /www/index.html; httpd -f -p "$PORT" -h /www & wait
      """
    And the repository "web" is served over smart HTTP on 127.0.0.1
    When alice checks the git URL "http://127.0.0.1:<git server port>/web.git"
    Then the answer says the repository is reachable with the branch "main"
    When alice creates the droid "web" from the git URL "http://127.0.0.1:<git server port>/web.git"
    Then the answer is 201 and the droid is "pending"
    And the droid "web" becomes "running" within 60 seconds
    And the droid "web" serves "over-http"

  Scenario: A git server that stalls mid-answer fails the check and the build after the timeout
    Given dmsd is running with the settings
      | setting            | value       |
      | DMS_GIT_ALLOW_NETS | 127.0.0.0/8 |
      | DMS_GIT_TIMEOUT_S  | 2           |
    And a git server on 127.0.0.1 that answers its first bytes and then stalls
    When alice checks the git URL "http://127.0.0.1:<stalling port>/x.git"
    Then the answer says the remote stalled, naming DMS_GIT_TIMEOUT_S
    When alice creates the droid "stalled" from the git URL "http://127.0.0.1:<stalling port>/x.git"
    Then the answer is 201 and the droid is "pending"
    And the reason of the droid "stalled" comes to mention "DMS_GIT_TIMEOUT_S" and "retrying" within 30 seconds
