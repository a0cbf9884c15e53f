@dmsd
Feature: dmsd fdlimit - a host's open-file limit bounds its droids, and reaching it breaks nothing
  Every running droid costs dmsd a few file descriptors. An operator runs dmsd under a low open-file limit:
  dmsd takes all the hard limit allows and says how many droids that is; past it, a create is refused with a
  503 that names the setting to raise, every droid it accepted still runs, and the log stays readable.

  Scenario: Past its open-file limit a create is refused, and every droid accepted runs
    Given dmsd is running with an open-file limit of 64 soft and 120 hard
    And a git repository "web" whose Dockerfile is
      """
      FROM dms-test/web:latest
      CMD echo "fd" > /www/index.html; exec httpd -f -p "$PORT" -h /www
      """
    Then dmsd's log says its open-file limit is 120 and how many droids that allows
    When alice creates droids from the repository "web" until one is refused
    Then the last create was answered 503 naming the field "limits.open_files" and the limit 120
    And every droid alice created becomes "running" within 180 seconds
    And with them all running dmsd holds at most 4 descriptors per droid beyond what it held with none
    And no line of dmsd's log repeats within a second
