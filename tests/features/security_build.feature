@dmsd @security
Feature: What a repository's build may do - base images, remote sources, files outside the checkout, labels
  A droid's Dockerfile comes from a repository its user controls, and is treated as hostile. It may start FROM the
  stack images dms provides (dms-stack/*), the images of its user's own droids (dms-droid/<droid id>:<tag>) and
  what the operator allows (DMS_BUILD_ALLOWED_IMAGES; the harness allows dms-test/* for every scenario, as an
  operator would list local images): not another user's image, whether named by its tag, by a prefix of its id,
  through an ARG or through COPY --from. ADD of a URL is refused (dockerd would fetch it from the host's network).
  dmsd never follows a link the repository planted, never writes into the checkout, and the labels dms relies on
  are its own, whatever the Dockerfile says. Every refusal is a failed build whose reason names the line.

  Scenario: Another user's image is refused by an id prefix, by its tag, through an ARG and through COPY --from
    Given dmsd is running
    And a git repository "vault" whose Dockerfile is
      """
      FROM dms-test/web:latest
      RUN echo "alice-secret-<unique>" > /www/secret.txt
      """
    And alice has a running droid "vault" from the repository "vault"
    And a git repository "by-id" whose Dockerfile, with the names filled in, is
      """
      FROM <image id prefix of vault>
      RUN cat /www/secret.txt
      """
    And a git repository "by-tag" whose Dockerfile, with the names filled in, is
      """
      FROM <image of vault>
      RUN cat /www/secret.txt
      """
    And a git repository "by-arg" whose Dockerfile, with the names filled in, is
      """
      ARG BASE=dms-droid/<droid vault>
      ARG TAG=<tag of vault>
      FROM ${BASE}:${TAG}
      RUN cat /www/secret.txt
      """
    And a git repository "by-copy" whose Dockerfile, with the names filled in, is
      """
      FROM dms-test/busybox:latest
      COPY --from=<image of vault> /www/secret.txt /stolen.txt
      RUN cat /stolen.txt
      """
    When bob creates the droid "by-id" from the repository "by-id"
    And bob creates the droid "by-tag" from the repository "by-tag"
    And bob creates the droid "by-arg" from the repository "by-arg"
    And bob creates the droid "by-copy" from the repository "by-copy"
    Then bob's droid "by-id" fails within 60 seconds, the reason naming line 1 and "image id"
    And bob's droid "by-tag" fails within 60 seconds, the reason naming line 1 and "FROM <image of vault>"
    And bob's droid "by-arg" fails within 60 seconds, the reason naming line 3 and "FROM ${BASE}:${TAG}"
    And bob's droid "by-copy" fails within 60 seconds, the reason naming line 2 and "COPY --from <image of vault>"
    And none of bob's droids "by-id, by-tag, by-arg, by-copy" has a release, a container or "alice-secret-<unique>" in its build log
    And alice's droid "vault" is "running"

  Scenario: A build may start from the stack images and from the images of its user's own droids
    Given dmsd is running
    And a git repository "base" whose Dockerfile is
      """
      FROM dms-stack/busybox:latest
      RUN mkdir /www && echo "base" > /www/index.html
      CMD trap 'exit 0' TERM; httpd -f -p "$PORT" -h /www & wait
      """
    And bob has a running droid "base" from the repository "base"
    And a git repository "derived" whose Dockerfile, with the names filled in, is
      """
      ARG TAG=<tag of base>
      FROM dms-droid/<droid base>:${TAG} AS app
      RUN echo "derived" > /www/index.html
      """
    When bob creates the droid "derived" from the repository "derived"
    Then bob's droid "derived" becomes "running" within 60 seconds
    And bob's droid "derived" serves "derived"
    And bob's droid "base" serves "base"

  Scenario: ADD of a URL is refused before dockerd fetches anything, and ADD of a repository's file works
    Given dmsd is running
    And a web server on the host's loopback that records every request
    And a git repository "fetch" whose Dockerfile, with the names filled in, is
      """
      FROM dms-test/web:latest
      ADD http://127.0.0.1:<port of the web server>/secret /www/secret
      """
    And a git repository "local" holding
      | path       | content                                                  |
      | Dockerfile | FROM dms-test/web:latest\nADD page.html /www/index.html  |
      | page.html  | from the repository                                      |
    When bob creates the droid "fetch" from the repository "fetch"
    And bob creates the droid "local" from the repository "local"
    Then bob's droid "fetch" fails within 60 seconds, the reason naming line 2 and "a URL or git source is refused"
    And bob's droid "local" becomes "running" within 60 seconds
    And bob's droid "local" serves "from the repository"
    And the web server got no request

  Scenario: A Dockerfile that is a link to a file of the host is refused, and that file is never read
    Given dmsd is running
    And a file of the host holding a Dockerfile that prints "host-secret-<unique>"
    And a git repository "linked" holding
      | path       | content        |
      | Dockerfile | -> <host file> |
    When bob creates the droid "linked" from the repository "linked"
    Then bob's droid "linked" fails within 60 seconds, the reason saying "symbolic link"
    And the build log of bob's droid "linked" does not have "host-secret-<unique>"

  Scenario: A link in the repository reaches the build as a link, never as the host file it points to
    Given dmsd is running
    And a file of the host holding "host-secret-<unique>"
    And a git repository "links" holding
      | path       | content                                                                        |
      | Dockerfile | FROM dms-test/web:latest\nCOPY . /src\nRUN ls -l /src/hostlink; cat /src/hostlink; true |
      | hostlink   | -> <host file>                                                                 |
    When bob creates the droid "links" from the repository "links"
    Then bob's droid "links" becomes "running" within 60 seconds
    And the build log of bob's droid "links" has "hostlink -> <host file>"
    And the build log of bob's droid "links" does not have "host-secret-<unique>"

  Scenario: A repository without a Dockerfile cannot make dmsd write through a link it planted
    Given dmsd is running
    And the stack images are made
    And a file of the host holding "untouched"
    And a git repository "site" holding
      | path       | content          |
      | index.html | static <unique>  |
    And the repository "site" has links to the file of the host at the names of dmsd's temporary files
    When bob creates the droid "site" from the repository "site"
    Then bob's droid "site" becomes "running" within 60 seconds
    And bob's droid "site" serves "static <unique>"
    And the file of the host still holds "untouched"

  Scenario: Stack detection reads the checkout's own files only, never through a link or outside the checkout
    Given dmsd is running
    And the stack images are made
    And a file of the host holding "web: echo host-secret-<unique>"
    And a git repository "shell" holding
      | path           | content                                      |
      | Procfile       | -> <host file>                               |
      | start.sh       | exec httpd -f -p "$PORT" -h /app/www         |
      | www/index.html | shell <unique>                               |
    And a git repository "node" holding
      | path         | content                                                      |
      | package.json | {"main": "../../../../../../../../../../../../etc/hostname"}  |
    When bob creates the droid "shell" from the repository "shell"
    And bob creates the droid "node" from the repository "node"
    Then bob's droid "shell" becomes "running" within 60 seconds
    And bob's droid "shell" serves "shell <unique>"
    And the build log of bob's droid "shell" does not have "host-secret-<unique>"
    And bob's droid "node" fails within 60 seconds, the reason saying "node: no start command"
    And the build log of bob's droid "node" does not have "etc/hostname"

  Scenario: A Dockerfile's LABEL cannot take the labels dms relies on, and deleting the droid removes its image
    Given dmsd is running
    And a git repository "spoof" whose Dockerfile is
      """
      FROM dms-test/web:latest
      LABEL io.dms.executor=someone-else io.dms.managed=false io.dms.job=not-this-droid io.dms.role=build
      """
    And alice has a running droid "spoof" from the repository "spoof"
    Then the image and the container of the droid "spoof" carry this dmsd's labels
    When alice deletes the droid "spoof"
    Then the answer is 200
    And the engine holds no container, image or volume of the droid "spoof"

  Scenario: One user's build never reuses a step another user's build made; a droid's own rebuild does
    Given dmsd is running
    And a git repository "cached" whose Dockerfile is
      """
      FROM dms-test/web:latest
      RUN echo "made once <unique>" > /www/made.txt
      """
    And alice has a running droid "first" from the repository "cached"
    When bob creates the droid "other" from the repository "cached"
    Then bob's droid "other" becomes "running" within 60 seconds
    And the build log of bob's droid "other" does not have "Using cache"
    And alice rebuilds the droid "first" within 60 seconds
    And the build log of alice's droid "first" has "Using cache"
