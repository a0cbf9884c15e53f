@dmsd
Feature: dmsd's data at rest, its children's environment, retention and paging
  What dmsd keeps holds users' secrets (a droid's env, hook secrets) and dmsd's own (the JWT secret in its
  environment). Another user of the host reads none of it: every file that holds a secret is 0600 and every
  directory 0700, and the children dmsd starts (Caddy) get a clean environment. Nothing grows for ever: old
  events, builds, runs and jobs are pruned in the background, never what is current, and every list is read in
  bounded pages that a cursor walks to the end.

  Background:
    Given dmsd is running
    And a git repository "vault" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD echo "the token is $SECRET_TOKEN"; trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """

  Scenario: Every file that holds a droid's secret is 0600 and every directory 0700
    Given alice has a running droid "vault" from the repository "vault" with a secret SECRET_TOKEN in its env
    When the logs of the droid "vault" show its secret
    And the droid "vault" answers through the proxy
    Then every file under dmsd's data dir is 0600, but for the droid's checkout, and at least 3 hold the secret
    And every directory under dmsd's data dir is 0700, but for the droid's checkout that keeps git's modes
    And dmsd's log holds neither the droid's secret nor the JWT secret

  Scenario: Caddy runs with a clean environment and none of dmsd's files
    Given alice has a running droid "vault" from the repository "vault" with a secret SECRET_TOKEN in its env
    Then Caddy's environment holds neither dmsd's JWT secret nor any DMS_ setting
    And Caddy holds no file of dmsd's open
    And the droid "vault" answers through the proxy

  Scenario: A data dir an older dmsd left open to other users is private after a start
    Given alice has a running droid "vault" from the repository "vault" with a secret SECRET_TOKEN in its env
    When dmsd is stopped
    And dmsd's data dir and its top directories are made 0755, as an older dmsd left them
    And dmsd starts again on the same data
    Then dmsd's data dir and its top directories are 0700
    And dmsd's log says it made its data dir private
    And the droid "vault" becomes "running" within 30 seconds
    And the droid "vault" answers through the proxy

  Scenario: dmsd refuses a data dir that other users share, and leaves it as it was
    When dmsd is started on a data dir of mode 1777, like /tmp
    Then it exits at once saying the data dir is shared, naming DMS_DATA_DIR
    And that data dir is still 1777 and empty
