@dmsd
Feature: Builds are shared fairly, end in time, and cannot exhaust dmsd or the host
  dmsd runs several builds at once (DMS_BUILD_WORKERS), fairly across users: one user's builds hold at most
  their share of the workers (all but one by default), so another user's build starts while theirs run, and a
  droid's builds never run two at once. Every build has a time limit, the operator's default or the droid's
  own build_timeout_s within the operator's maximum; past it the build is stopped at the engine and fails with
  the reason, without a retry. Build output is bounded: dmsd's memory does not grow with it, and build.out
  stops at its cap with a note (the previous build's log is kept once). Every build step runs within the
  operator's memory and CPU limits.

  Scenario: One user's endless builds hold at most their share of the workers; another user's build runs
    Given dmsd is running
    And a git repository "endless" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      RUN echo "holding a worker <unique>" && sleep 300
      """
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "hog-1" from the repository "endless"
    And alice creates the droid "hog-2" from the repository "endless"
    And alice creates the droid "hog-3" from the repository "endless"
    Then the droid "hog-1" becomes "building" within 30 seconds
    And the droid "hog-2" becomes "building" within 30 seconds
    And 3 seconds later the droid "hog-3" is still "pending" and has no new events
    When bob creates the droid "web" from the repository "web"
    Then bob's droid "web" becomes "running" within 60 seconds
    And bob's droid "web" serves "ok"
    And the droid "hog-1" is "building"
    And the droid "hog-2" is "building"
    And the droid "hog-3" is "pending"
    When alice cancels the build of the droid "hog-1"
    Then the droid "hog-3" becomes "building" within 30 seconds
    And the droid "hog-2" is "building"

  Scenario: A build past its time limit fails with the reason and is not retried; a droid may ask for more
    Given dmsd is running with the settings
      | setting                 | value |
      | DMS_BUILD_TIMEOUT_S     | 4     |
      | DMS_BUILD_TIMEOUT_MAX_S | 60    |
    And a git repository "slow" whose Dockerfile is
      """
      FROM dms-test/web:latest
      RUN echo "slow step <unique>" && sleep 8
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "hasty" from the repository "slow"
    Then the droid "hasty" becomes "failed" within 30 seconds
    And the reason of the droid "hasty" mentions "build timed out after 4 s"
    And the build log of the droid "hasty" has "failed: build timed out after 4 s"
    And no container runs "slow step" any more
    And 3 seconds later the droid "hasty" is still "failed" with exactly one build, "failed"
    When alice creates a droid with the body
      """
      {"name": "patient", "repo": "<repo slow>", "build_timeout_s": 40}
      """
    Then the answer is 201 and the droid is "pending"
    And the droid "patient" has a build time limit of 40 s
    And the droid "patient" becomes "running" within 60 seconds
    And the droid "hasty" has no build time limit of its own

  Scenario: A droid's time limit is checked against the operator's maximum, and a new one applies to the next build
    Given dmsd is running with the settings
      | setting                 | value |
      | DMS_BUILD_TIMEOUT_MAX_S | 60    |
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates a droid with the body
      """
      {"name": "greedy", "repo": "<repo web>", "build_timeout_s": 61}
      """
    Then the answer is 400 naming the field "build_timeout_s"
    And the answer says "DMS_BUILD_TIMEOUT_MAX_S"
    And alice has no droids
    When alice creates a droid with the body
      """
      {"name": "greedy", "repo": "<repo web>", "build_timeout_s": "soon"}
      """
    Then the answer is 400 naming the field "build_timeout_s"
    Given alice has a running droid "web" from the repository "web"
    When alice changes the droid "web" with
      """
      {"build_timeout_s": 0}
      """
    Then the answer is 400 naming the field "build_timeout_s"
    When alice changes the droid "web" with
      """
      {"build_timeout_s": 2}
      """
    Then the answer is 200
    And the droid "web" has a build time limit of 2 s
    When a new commit on the repository "web" changes its Dockerfile to
      """
      FROM dms-test/web:latest
      RUN echo "a step slower than 2 s <unique>" && sleep 30
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    And alice changes the droid "web" with
      """
      {"branch": "main"}
      """
    Then the reason of the droid "web" comes to mention "build timed out after 2 s" and "still serving release 1" within 30 seconds
    And the droid "web" is "running"
    And the droid "web" serves "ok"
    And no container runs "a step slower than 2 s" any more
    When alice changes the droid "web" with
      """
      {"build_timeout_s": null}
      """
    Then the answer is 200
    And the droid "web" has no build time limit of its own

  Scenario: A build printing far more than the log cap leaves build.out at the cap, and dmsd's memory bounded
    Given dmsd is running with the settings
      | setting              | value |
      | DMS_BUILD_LOG_MAX_MB | 1     |
    And a git repository "loud" whose Dockerfile is
      """
      FROM dms-test/web:latest
      RUN echo "no newline for 100 MB <unique>" && head -c 100000000 /dev/zero | tr '\0' x
      RUN yes "a line of build output" | head -c 20000000
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "loud" from the repository "loud"
    Then the droid "loud" becomes "running" within 120 seconds
    And the build.out of the droid "loud" is at most 1 MB and says "reached its cap" once
    And the build log of the droid "loud" has "lines longer than 65536 bytes: they are split"
    And the build log of the droid "loud" has "bytes of output were dropped past its cap"
    And the build log of the droid "loud" has "[dms] built dms-droid/"
    And dmsd's memory never went above 64 MB
    When a new commit on the repository "loud" changes its Dockerfile to
      """
      FROM dms-test/web:latest
      RUN echo "quiet now <unique>"
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    And alice changes the droid "loud" with
      """
      {"branch": "main"}
      """
    Then the droid "loud" runs release 2 within 60 seconds
    And the build log of the droid "loud" has "quiet now"
    And the previous build log of the droid "loud" is kept beside it, and says "reached its cap"

  Scenario: A build step needing more memory than DMS_BUILD_MEMORY_MB is killed; one within the limits builds
    Given dmsd is running with the settings
      | setting              | value |
      | DMS_BUILD_MEMORY_MB  | 64    |
      | DMS_BUILD_CPU_MILLIS | 500   |
    And a git repository "hog" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      RUN echo "allocating <unique>" && dd if=/dev/zero of=/dev/null bs=256M count=1
      """
    And a git repository "modest" whose Dockerfile is
      """
      FROM dms-test/web:latest
      RUN echo "allocating <unique>" && dd if=/dev/zero of=/dev/null bs=16M count=1
      RUN echo "cpu quota $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max) per $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cut -d' ' -f2 /sys/fs/cgroup/cpu.max)"
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    When alice creates the droid "hog" from the repository "hog"
    Then the droid "hog" becomes "failed" within 60 seconds
    And the reason of the droid "hog" mentions "returned a non-zero code: 137"
    And the reason of the droid "hog" mentions "memory limit is 64 MiB"
    And 3 seconds later the droid "hog" is still "failed" with exactly one build, "failed"
    When alice creates the droid "modest" from the repository "modest"
    Then the droid "modest" becomes "running" within 60 seconds
    And the build log of the droid "modest" has "cpu quota 50000 per 100000"
