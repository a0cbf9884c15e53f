@dmsd
Feature: dmsd keeps nothing for ever, and every list is read in pages
  Events, builds, releases, runs and jobs are pruned in the background beyond what the operator keeps, a small
  batch at a time, and never what is current: the release a droid runs, its build, a job that has not finished.
  Every list route answers a bounded page by default; the X-Next-Cursor of a page, passed as `after`, gives the
  rows that follow, none missed or repeated while new rows arrive. dmsctl follows the cursor to the end.

  Background:
    Given a git repository "empty" with a README and no Dockerfile
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=v1
      """

  Scenario: Every list answers a bounded page, and its cursor walks the rest while rows arrive
    Given dmsd is running with the settings
      | setting        | value |
      | DMS_PAGE_LIMIT | 2     |
    And alice has the failed droids "e1,e2,e3,e4,e5" from the repository "empty"
    And the droid "e1" has been rebuilt 2 times, failing each time
    When alice walks "/droids" in pages while she creates the droid "e6" from the repository "empty"
    Then every page held at most 2 rows, and each but the last gave a cursor
    And the walk saw every droid once, in the order of the whole list, "e6" too
    When alice walks the events of the droid "e1" in pages while the droid "e1" is rebuilt
    Then every page held at most 2 rows, and each but the last gave a cursor
    And the walk saw every event once, in the order of the whole list, the new ones too
    When alice walks the builds of the droid "e1" in pages while the droid "e1" is rebuilt
    Then every page held at most 2 rows, and each but the last gave a cursor
    And the walk saw every build that was there before it began once, newest first
    And a page of "/droids" asked with the limit 1001 or the cursor "x.y" is answered 400 naming its key
    And dmsctl lists all 6 droids of alice and every event of the droid "e1"

  Scenario: Releases and jobs are read in pages too
    Given dmsd is running with the settings
      | setting        | value |
      | DMS_PAGE_LIMIT | 2     |
    And the stack images are made
    And a git repository "site" with the file "index.html"
      """
      <h1>site</h1>
      """
    And alice has a running droid "web" from the repository "web"
    And the droid "web" has been redeployed 2 times, to release 3
    When alice walks the releases of the droid "web" in pages
    Then every page held at most 2 rows, and each but the last gave a cursor
    And the walk saw every release that was there before it began once, newest first
    Given alice has run the jobs "j1,j2,j3" of the repository "site" to their end
    When alice walks her jobs in pages while she creates another job
    Then every page held at most 2 rows, and each but the last gave a cursor
    And the walk saw every job that was there before it began once, newest first
    And each page of the jobs said where the next one starts in "next_cursor" too

  Scenario: Old events, builds, releases and runs are pruned, and what is current stays
    Given dmsd is running with the settings
      | setting               | value |
      | DMS_RETAIN_EVENTS     | 5     |
      | DMS_RETAIN_BUILDS     | 2     |
      | DMS_RETAIN_RUNS       | 1     |
      | DMS_KEEP_RELEASES     | 1     |
      | DMS_RETAIN_INTERVAL_S | 1     |
    And alice has a running droid "web" from the repository "web"
    And the droid "web" has been redeployed 2 times, to release 3
    And the droid "web" has been restarted 6 times
    Then within 20 seconds the droid "web" has only its 5 newest events
    And within 20 seconds the builds of the droid "web" are its 2 newest, the current one among them
    And within 20 seconds the releases of the droid "web" are 3 and 2
    And within 20 seconds the store holds only the runs of the droid "web" whose logs are kept
    And the droid "web" is "running"
    And the droid "web" is at release 3
    And the droid "web" answers through the proxy

  Scenario: Finished jobs beyond a user's newest, or too old, go with their log and their directory
    Given dmsd is running with the settings
      | setting               | value |
      | DMS_RETAIN_JOBS       | 2     |
      | DMS_RETAIN_INTERVAL_S | 1     |
    And the stack images are made
    And a git repository "site" with the file "index.html"
      """
      <h1>site</h1>
      """
    And alice has run the jobs "j1,j2,j3" of the repository "site" to their end
    And bob has run the jobs "b1" of the repository "site" to their end
    Then within 20 seconds alice's jobs are "j3,j2"
    And the job "j1" is gone, with its log and its directory
    And the jobs "j2,j3" still have their directory, and bob's "b1" is kept
    When dmsd is stopped
    And the job "j2" is made to have finished 31 days ago, in dmsd's store
    And dmsd starts again on the same data
    Then within 20 seconds alice's jobs are "j3"
    And the job "j2" is gone, with its log and its directory
