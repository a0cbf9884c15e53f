@dmsd @jobs @security
Feature: dmsd build jobs - a job's workload cannot make dmsd read the host, and no user's queue holds another's
  A job's steps run as root in containers that write into directories bind-mounted from the host, and its build
  command controls the first entry of the PATH (.venv/bin for pip, the cache's node_modules/.bin for pnpm). So
  whatever a job leaves is hostile: a symlink to /proc/self/environ where the artifact should be, a FIFO, a
  device node, a directory, a huge sparse file, a dist directory full of links to host files. dmsd packs the
  dist directory with its own tar and a fixed PATH, takes the artifact out once into a file of its own (never
  following a link, a regular file only, bounded in size) and serves only that file. The honest job next to
  each attack still gets its artifact.

  Jobs are also queued fairly: a user holds at most DMS_JOB_USER_MAX running jobs, the next job is taken from the
  user with the fewest running, and at most DMS_USER_MAX_JOBS of a user's jobs are queued or running.

  Scenario: A pip build that puts its own tar first on the PATH cannot make the artifact dmsd's environment
    Given dmsd is running
    And the stack images are made
    And a git repository "py" with the file "requirements.txt"
      """
      # the standard library is enough
      """
    And the repository "py" also has the file "plant.sh"
      """
      # Builds an honest dist directory, then plants a tar (and a wc) in $1, a directory on the PATH of the
      # later steps, that make /out/artifact.tar a $2 instead of a tar.
      set -e
      mkdir -p dist && echo '<h1>honest</h1>' > dist/index.html
      mkdir -p "$1"
      printf '#!/bin/sh\necho "fake tar ran" >&2\nrm -rf /out/artifact.tar\n' > "$1/tar"
      case "$2" in
        symlink) echo 'ln -s /proc/self/environ /out/artifact.tar' >> "$1/tar" ;;
        fifo) echo 'mkfifo /out/artifact.tar' >> "$1/tar" ;;
        device) echo 'mknod /out/artifact.tar c 1 5 || echo "no mknod here" >&2' >> "$1/tar" ;;
        directory) echo 'mkdir /out/artifact.tar' >> "$1/tar" ;;
        pnpm) printf '#!/bin/sh\necho "fake pnpm: $*"\n' > "$1/pnpm"; chmod +x "$1/pnpm" ;;
      esac
      printf '#!/bin/sh\necho 0\n' > "$1/wc"
      chmod +x "$1/tar" "$1/wc"
      echo "planted a $2 in $1"
      """
    When alice creates the job "evil" for the project "py" and the deployment "e1" of the repository "py" with
      | build command                          | package manager | dist directory |
      | sh plant.sh /workspace/.venv/bin symlink | pip           | dist           |
    Then the job "evil" becomes "succeeded" within 120 seconds
    And the log of the job "evil" has "planted a symlink"
    And the log of the job "evil" does not have "fake tar ran"
    And the artifact of the job "evil" answers at once with a tar of "./", "./index.html"
    And nothing dmsd answers about the job "evil" holds its JWT secret or "DMS_DATA_DIR="
    And the job "evil" kept nothing in the tree its containers wrote
    When alice drops the dependency cache of the project "py"
    Then the answer is 200

  Scenario: The same with pnpm's PATH, the dependency cache's node_modules/.bin
    Given dmsd is running
    And the stack images are made
    And a git repository "node" with the file "package.json"
      """
      {"name": "node", "version": "1.0.0"}
      """
    And the repository "node" also has the file "plant.sh"
      """
      set -e
      mkdir -p dist && echo '<h1>honest</h1>' > dist/index.html
      mkdir -p "$1"
      printf '#!/bin/sh\necho "fake tar ran" >&2\nrm -rf /out/artifact.tar\nln -s /proc/self/environ /out/artifact.tar\n' > "$1/tar"
      printf '#!/bin/sh\necho 0\n' > "$1/wc"
      printf '#!/bin/sh\necho "the pnpm an earlier job planted: $*"\n' > "$1/pnpm"
      chmod +x "$1/tar" "$1/wc" "$1/pnpm"
      echo "planted in $1"
      """
    And alice created the job "plant" for the project "web" and the deployment "p1" of the repository "node" with
      | build command                                   | package manager | dist directory |
      | sh plant.sh /cache/tools/node_modules/.bin      | npm             | dist           |
    And the job "plant" became "succeeded" within 120 seconds
    When alice creates the job "evil" for the project "web" and the deployment "p2" of the repository "node" with
      | build command                                   | package manager | dist directory |
      | sh plant.sh /cache/tools/node_modules/.bin      | pnpm            | dist           |
    Then the job "evil" becomes "succeeded" within 120 seconds
    And the log of the job "evil" has "the pnpm an earlier job planted"
    And the log of the job "evil" does not have "fake tar ran"
    And the artifact of the job "evil" answers at once with a tar of "./", "./index.html"
    And nothing dmsd answers about the job "evil" holds its JWT secret or "DMS_DATA_DIR="
    When alice drops the dependency cache of the project "web"
    Then the answer is 200

  Scenario Outline: A <kind> planted as the artifact neither hangs dmsd nor reaches the host's devices
    Given dmsd is running with the settings
      | setting           | value |
      | DMS_JOB_TIMEOUT_S | 90    |
    And the stack images are made
    And a git repository "py" with the file "requirements.txt"
      """
      # the standard library is enough
      """
    And the repository "py" also has the file "plant.sh"
      """
      set -e
      mkdir -p dist && echo '<h1>honest</h1>' > dist/index.html
      mkdir -p "$1"
      printf '#!/bin/sh\necho "fake tar ran" >&2\nrm -rf /out/artifact.tar\n' > "$1/tar"
      case "$2" in
        fifo) echo 'mkfifo /out/artifact.tar' >> "$1/tar" ;;
        device) echo 'mknod /out/artifact.tar c 1 5 || echo "no mknod here" >&2' >> "$1/tar" ;;
        directory) echo 'mkdir /out/artifact.tar' >> "$1/tar" ;;
        socket) echo 'python3 -c "import socket; socket.socket(socket.AF_UNIX).bind(\"/out/artifact.tar\")"' >> "$1/tar" ;;
      esac
      printf '#!/bin/sh\necho 0\n' > "$1/wc"
      chmod +x "$1/tar" "$1/wc"
      echo "planted a $2 in $1"
      """
    When alice creates the job "evil" for the project "py" and the deployment "e1" of the repository "py" with
      | build command                         | package manager | dist directory |
      | sh plant.sh /workspace/.venv/bin <kind> | pip           | dist           |
    Then the job "evil" becomes "succeeded" within 120 seconds
    And the log of the job "evil" has "planted a <kind>"
    And the log of the job "evil" does not have "fake tar ran"
    And the artifact of the job "evil" answers at once with a tar of "./", "./index.html"
    And dmsd still answers
    When alice drops the dependency cache of the project "py"
    Then the answer is 200

    Examples:
      | kind      |
      | fifo      |
      | device    |
      | directory |
      | socket    |

  Scenario: A dist directory full of links to host files gives a tar of the links, not of the host's files
    Given dmsd is running
    And the stack images are made
    And a git repository "links" with the file "links.sh"
      """
      set -e
      mkdir -p dist/sub && cd dist
      echo '<h1>honest</h1>' > index.html
      ln -s /etc/passwd passwd
      ln -s /proc/self/environ environ
      ln -s / root
      ln -s ../../../../../../../../../etc/shadow sub/shadow
      ln ../links.sh hard
      echo made the links
      """
    When alice creates the job "links" for the project "l" and the deployment "l1" of the repository "links" with
      | build command | package manager | dist directory |
      | sh links.sh   | none            | dist           |
    Then the job "links" becomes "succeeded" within 60 seconds
    And the artifact of the job "links" holds these symbolic links, as links
      | name         | target                                 |
      | ./passwd     | /etc/passwd                            |
      | ./environ    | /proc/self/environ                     |
      | ./root       | /                                      |
      | ./sub/shadow | ../../../../../../../../../etc/shadow  |
    And nothing dmsd answers about the job "links" holds its JWT secret or "root:x:0:0"

  Scenario Outline: A dist directory that is a link out of the repository fails the job: <target>
    Given dmsd is running
    And the stack images are made
    And a git repository "out" with the file "README"
      """
      the build makes dist a link
      """
    When alice creates the job "out" for the project "o" and the deployment "o1" of the repository "out" with
      | build command       | package manager | dist directory |
      | ln -s <target> dist | none            | dist           |
    Then the job "out" becomes "failed" within 60 seconds
    And the reason of the job "out" is "the dist directory dist leads out of the repository"
    When alice fetches the artifact of the job "out"
    Then the answer is 404 naming the field "id"

    Examples:
      | target      |
      | /           |
      | /proc/self  |
      | ../../etc   |
      | /workspace/.. |

  Scenario Outline: A dist directory above or outside the repository is refused when the job is posted: <value>
    Given dmsd is running
    When alice posts a job whose "project_dist_directory" is <value>
    Then the answer is 400 naming the field "project_dist_directory"

    Examples:
      | value          |
      | ".."           |
      | "/etc"         |
      | "a/../.."      |
      | "./.."         |
      | "dist/../../x" |
      | "//etc"        |

  Scenario: An artifact above DMS_JOB_ARTIFACT_MAX_MB fails its job, sparse or not; one below it is served
    Given dmsd is running with the settings
      | setting                  | value |
      | DMS_JOB_ARTIFACT_MAX_MB  | 1     |
    And the stack images are made
    And a git repository "big" with the file "README"
      """
      sizes
      """
    When alice creates the job "dense" for the project "b" and the deployment "b1" of the repository "big" with
      | build command                                                        | package manager | dist directory |
      | mkdir dist && head -c 2000000 /dev/urandom > dist/blob               | none            | dist           |
    And alice creates the job "sparse" for the project "b" and the deployment "b2" of the repository "big" with
      | build command                                                        | package manager | dist directory |
      | mkdir dist && truncate -s 4G dist/hole                               | none            | dist           |
    And alice creates the job "small" for the project "b" and the deployment "b3" of the repository "big" with
      | build command                                                        | package manager | dist directory |
      | mkdir dist && head -c 500000 /dev/urandom > dist/blob                | none            | dist           |
    Then the job "dense" becomes "failed" within 90 seconds
    And the reason of the job "dense" is "the artifact is larger than 1 MB (DMS_JOB_ARTIFACT_MAX_MB)"
    And the job "sparse" becomes "failed" within 90 seconds
    And the reason of the job "sparse" is "the artifact is larger than 1 MB (DMS_JOB_ARTIFACT_MAX_MB)"
    And the job "small" becomes "succeeded" within 90 seconds
    And the artifact of the job "small" answers at once with a tar of "./", "./blob"

  Scenario: One user's queue of long jobs does not hold another user's job back; past the quota a job is refused
    Given dmsd is running with the settings
      | setting             | value |
      | DMS_JOB_CONCURRENCY | 2     |
      | DMS_USER_MAX_JOBS   | 3     |
    And the stack images are made
    And a git repository "wait" with the file "wait.sh"
      """
      echo "waiting to be told to go"
      while [ ! -e go ]; do sleep 0.2; done
      mkdir -p dist && echo done > dist/index.html
      """
    And alice created the job "a1" for the project "w" and the deployment "a1" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    And alice created the job "a2" for the project "w" and the deployment "a2" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    And alice created the job "a3" for the project "w" and the deployment "a3" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    When the job "a1" runs its build step
    And bob creates the job "b1" for the project "w" and the deployment "b1" of the repository "wait" with
      | build command                                       | package manager | dist directory |
      | mkdir dist && echo bob > dist/index.html            | none            | dist           |
    Then the job "b1" of bob becomes "succeeded" within 60 seconds
    And the jobs "a2" and "a3" are "queued"
    And the job "a1" is "running"
    When alice creates the job "a4" for the project "w" and the deployment "a4" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    Then the answer is 429 naming the field "DMS_USER_MAX_JOBS"
    And the answer says "DMS_USER_MAX_JOBS"
    When the job "a1" is told to go
    Then the job "a1" becomes "succeeded" within 60 seconds
    When the job "a2" runs its build step
    Then the jobs "a3" are "queued"
    When alice creates the job "a4" for the project "w" and the deployment "a4" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    Then the answer is 200 with the data "OK" and the job's id
    When alice cancels the job "a2"
    And alice cancels the job "a3"
    And alice cancels the job "a4"
    Then the job "a2" becomes "cancelled" within 10 seconds

  Scenario: The next job is taken from the user with the fewest running, before an older job of a busier user
    Given dmsd is running with the settings
      | setting             | value |
      | DMS_JOB_CONCURRENCY | 2     |
      | DMS_JOB_USER_MAX    | 2     |
    And the stack images are made
    And a git repository "wait" with the file "wait.sh"
      """
      echo "waiting to be told to go"
      while [ ! -e go ]; do sleep 0.2; done
      mkdir -p dist && echo done > dist/index.html
      """
    And alice created the job "a1" for the project "w" and the deployment "a1" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    And alice created the job "a2" for the project "w" and the deployment "a2" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    And the job "a1" runs its build step
    And the job "a2" runs its build step
    And alice created the job "a3" for the project "w" and the deployment "a3" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    And bob created the job "b1" for the project "w" and the deployment "b1" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    When the job "a1" is told to go
    Then the job "a1" becomes "succeeded" within 60 seconds
    When the job "b1" runs its build step
    Then the jobs "a3" are "queued"
    When the job "b1" is told to go
    Then the job "b1" of bob becomes "succeeded" within 60 seconds
    When the job "a3" runs its build step
    And the job "a2" is told to go
    And the job "a3" is told to go
    Then the job "a2" becomes "succeeded" within 60 seconds
    And the job "a3" becomes "succeeded" within 60 seconds

  Scenario: With one worker the users take turns: a user's long queue holds another's job back for one job only
    Given dmsd is running with the settings
      | setting             | value |
      | DMS_JOB_CONCURRENCY | 1     |
    And the stack images are made
    And a git repository "wait" with the file "wait.sh"
      """
      echo "waiting to be told to go"
      while [ ! -e go ]; do sleep 0.2; done
      mkdir -p dist && echo done > dist/index.html
      """
    And alice created the job "a1" for the project "w" and the deployment "a1" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    And alice created the job "a2" for the project "w" and the deployment "a2" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    And alice created the job "a3" for the project "w" and the deployment "a3" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    And the job "a1" runs its build step
    And bob created the job "b1" for the project "w" and the deployment "b1" of the repository "wait" with
      | build command | package manager | dist directory |
      | sh wait.sh    | none            | dist           |
    When the job "a1" is told to go
    Then the job "a1" becomes "succeeded" within 60 seconds
    When the job "b1" runs its build step
    Then the jobs "a2" and "a3" are "queued"
    When the job "b1" is told to go
    Then the job "b1" of bob becomes "succeeded" within 60 seconds
    When the job "a2" runs its build step
    And alice cancels the job "a2"
    And alice cancels the job "a3"
    Then the job "a2" becomes "cancelled" within 10 seconds
