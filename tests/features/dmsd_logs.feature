@dmsd
Feature: dmsd logs - what a droid printed, page by page or live
  A droid's runtime logs can be read from the end (tail), in pages that continue where the last one stopped (the
  X-Last-Log-Nano cursor: no line is ever sent twice or skipped), or followed live as a chunked stream that ends
  when the run ends.

  Background:
    Given dmsd is running
    And a git repository "ticker" whose Dockerfile is
      """
      FROM dms-test/busybox:latest
      CMD trap 'exit 0' TERM; i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.1; done
      """
    And alice has a running droid "ticker" from the repository "ticker"
    And the current run of the droid "ticker" has printed "tick 25"

  Scenario: The tail gives the last lines
    When alice reads the logs of the droid "ticker" with "?tail=3"
    Then the answer has 3 lines "tick N" counting up by one, the last at least "tick 25"

  Scenario: Pages from the cursor never repeat or skip a line
    When alice reads the logs of the droid "ticker" in 5 pages of 4 lines, each from the cursor of the last
    Then the pages hold "tick 0" to "tick 19" in order, each line once
    And each page's cursor is later than the one before

  Scenario: JSON pages carry each line's timestamp, and the cursor is the last line's
    When alice reads the logs of the droid "ticker" in 3 pages of 5 JSON lines, each from the cursor of the last
    Then the pages hold "tick 0" to "tick 14" in order, each line once
    And each page's cursor is the timestamp of its last line, and every line is later than the cursor before it

  Scenario: Following streams new lines as they are printed, until the run ends
    When alice follows the logs of the droid "ticker" from now on
    Then the log stream is chunked
    And within 30 seconds the log stream has brought at least 15 lines "tick N" counting up by one
    And those lines arrived over at least 1 second, not in one piece
    When alice stops the droid "ticker"
    Then the log stream ends by itself within 10 seconds
