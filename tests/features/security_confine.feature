@dmsd
Feature: security - confined containers: limits, privileges, a network per user, quotas
  dmsd runs every droid and every job step with memory, CPU and process limits (a droid may ask for its own, up
  to the operator's ceilings), without the capabilities an ordinary app does not need, unable to gain privilege
  through execve, and on a network of its user's own that another user's containers cannot reach. A user may
  hold so many droids and so much disk; past that dmsd answers 403 naming the quota and its setting, and
  creates nothing.

  Background:
    Given a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      ENV PAGE=web
      CMD echo "$PAGE" > /www/index.html; httpd -f -p "$PORT" -h /www
      """

  Scenario: A droid runs with the default limits, no new privileges and only the capabilities a web app needs
    Given dmsd is running
    And alice has a running droid "web" from the repository "web"
    Then the container of the droid "web" has the limits
      | memory_mb | cpu_millis | pids |
      | 512       | 1000       | 256  |
    And the droid "web" shows the resources
      | memory_mb | cpu_millis | pids |
      | 512       | 1000       | 256  |
    And inside the container of the droid "web" the pids limit is 256
    And the container of the droid "web" runs with no new privileges and only the capabilities "CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,SETGID,SETUID,NET_BIND_SERVICE"
    And the droid "web" serves "web"

  Scenario: Inside its container a droid holds only those capabilities, and a setuid program gains it nothing
    Given dmsd is running
    And a git repository "probe" holding the privilege probe, whose Dockerfile is
      """
      FROM dms-test/web:latest
      COPY privprobe /usr/local/bin/privprobe
      RUN cp /usr/local/bin/privprobe /usr/local/bin/privprobe-suid && chmod 4755 /usr/local/bin/privprobe-suid
      CMD grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -d '\t '; privprobe raw; mknod /tmp/dev c 1 3 || echo "mknod refused"; privprobe as 1000 /usr/local/bin/privprobe-suid euid; echo probe > /www/index.html; httpd -f -p "$PORT" -h /www
      """
    And alice has a running droid "probe" from the repository "probe"
    Then the current run of the droid "probe" has printed "CapEff:00000000000004fb"
    And the current run of the droid "probe" has printed "NoNewPrivs:1"
    And the current run of the droid "probe" has printed "raw socket: Operation not permitted"
    And the current run of the droid "probe" has printed "mknod refused"
    And the current run of the droid "probe" has printed "euid=1000"
    And the droid "probe" serves "probe"

  Scenario: A droid asks for its own limits: above the operator's ceiling is refused, within is applied
    Given dmsd is running with the settings
      | setting                 | value |
      | DMS_DROID_MEMORY_MAX_MB | 1024  |
    When alice creates a droid with the body
      """
      {"name": "big", "repo": "<repo web>", "resources": {"memory_mb": 4096}}
      """
    Then the answer is 400 naming the field "resources.memory_mb"
    And the answer says "DMS_DROID_MEMORY_MAX_MB=1024"
    And alice has no droids
    When alice creates a droid with the body
      """
      {"name": "small", "repo": "<repo web>", "resources": {"memory_mb": 256, "pids": 64}}
      """
    Then the answer is 201 and the droid is "pending"
    And the droid "small" becomes "running" within 60 seconds
    And the container of the droid "small" has the limits
      | memory_mb | cpu_millis | pids |
      | 256       | 1000       | 64   |
    And inside the container of the droid "small" the pids limit is 64
    When alice changes the droid "small" with
      """
      {"resources": {"memory_mb": 2048}}
      """
    Then the answer is 400 naming the field "resources.memory_mb"
    Given I note the container of the droid "small"
    When alice changes the droid "small" with
      """
      {"resources": {"memory_mb": 768}}
      """
    Then the answer is 200 and the droid's name is "small"
    And the droid "small" runs in a new container within 30 seconds
    And the container of the droid "small" has the limits
      | memory_mb | cpu_millis | pids |
      | 768       | 1000       | 256  |
    And the droid "small" shows the resources
      | memory_mb | cpu_millis | pids |
      | 768       | 1000       | 256  |

  Scenario: Each user's droids are on a network of their own: bob's droid reaches his other droid, not alice's
    Given dmsd is running
    And alice has a running droid "a-web" from the repository "web" with the env
      | name | value |
      | PAGE | alice |
    And bob has a running droid "b-web" from the repository "web" with the env
      | name | value   |
      | PAGE | bob-web |
    And bob has a running droid "b-api" from the repository "web" with the env
      | name | value   |
      | PAGE | bob-api |
    Then the container of the droid "a-web" is on the network of alice only
    And the container of the droid "b-web" is on the network of bob only
    And from the container of the droid "b-web", the droid "b-api" answers "bob-api"
    And from the container of the droid "b-web", the droid "a-web" cannot be reached
    And from the container of the droid "a-web", the droid "b-api" cannot be reached
    And the droid "a-web" serves "alice"
    When bob deletes the droid "b-web"
    Then the network of bob is there
    When bob deletes the droid "b-api"
    Then the network of bob is gone
    And the network of alice is there

  @jobs
  Scenario: A job step runs with the job limits, the same privileges, and on its user's network
    Given dmsd is running
    And the stack images are made
    And alice has a running droid "a-web" from the repository "web" with the env
      | name | value |
      | PAGE | alice |
    When alice runs the job "mine" of the repository "web" that reports its confinement and tries the droid "a-web"
    And bob runs the job "theirs" of the repository "web" that reports its confinement and tries the droid "a-web"
    Then the job "mine" of alice becomes "succeeded" within 120 seconds
    And the job "theirs" of bob becomes "succeeded" within 120 seconds
    And the log of the job "mine" has "CapEff:00000000000004fb" and "NoNewPrivs:1"
    And the log of the job "mine" has "memory limit 2147483648" and "pids limit 1024"
    And the log of the job "mine" has "droid a-web reached"
    And the log of the job "theirs" has "droid a-web unreachable"

  Scenario: Alice at her droid quota gets 403 naming the quota, and nothing is created
    Given dmsd is running with the settings
      | setting             | value |
      | DMS_USER_MAX_DROIDS | 2     |
    And alice has a running droid "one" from the repository "web"
    And alice has a running droid "two" from the repository "web"
    When alice creates the droid "three" from the repository "web"
    Then the answer is 403 naming the field "quota.droids"
    And the answer says "DMS_USER_MAX_DROIDS allows 2"
    And alice's droids are "one,two"
    And the name "three" is free
    Given bob has a running droid "bobs" from the repository "web"
    When alice deletes the droid "one"
    And alice creates the droid "three" from the repository "web"
    Then the answer is 201 and the droid is "pending"
    And the droid "three" becomes "running" within 60 seconds

  Scenario: Alice at her disk quota can neither create nor rebuild, while her droid keeps serving
    Given dmsd is running with the settings
      | setting              | value |
      | DMS_USER_MAX_DISK_MB | 1     |
    And alice has a running droid "web" from the repository "web"
    When alice creates the droid "more" from the repository "web"
    Then the answer is 403 naming the field "quota.disk_mb"
    And the answer says "DMS_USER_MAX_DISK_MB allows 1 MB"
    And alice's droids are "web"
    When alice changes the droid "web" with
      """
      {"branch": "main"}
      """
    Then the answer is 403 naming the field "quota.disk_mb"
    And the droid "web" is "running"
    And the droid "web" serves "web"
    Given bob has a running droid "bobs" from the repository "web"
