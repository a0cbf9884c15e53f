@dmsd @follow
Feature: dmsd follow - a droid that follows its branch is redeployed when the branch moves
  With "follow": true, dmsd rebuilds a droid when its branch head moves: it looks at the branch now and then, and at
  once when a git host calls the droid's push hook with the droid's hook secret, or with the body signed by it as
  GitHub and Gitea do (no bearer token). The secret is shown once, when dmsd makes it. The old container serves
  until the new one runs.

  Scenario: A push hook with the droid's secret deploys the new commit while the old release serves
    Given dmsd is running
    And the stack images are made
    And a git repository "page" with the file "index.html"
      """
      <h1>page v1</h1>
      """
    When alice creates a droid with the body
      """
      {"name": "page", "repo": "<repo page>", "follow": true}
      """
    Then the answer is 201 and the droid is "pending"
    And the answer has a hook secret that reading the droid "page" does not show
    And the droid "page" becomes "running" within 120 seconds
    And the droid "page" answers "<h1>page v1</h1>"
    When a new commit on the repository "page" changes "index.html" to "<h1>page v2</h1>"
    And the git host calls the push hook of the droid "page" without a secret
    Then the answer is 401 naming the field "X-DMS-Hook-Secret"
    When the git host calls the push hook of the droid "page" with the secret "not-the-secret-at-all"
    Then the answer is 403 naming the field "X-DMS-Hook-Secret"
    When the git host calls the push hook of the droid "page" with its secret
    Then the answer is 202
    And the droid "page" comes to answer "<h1>page v2</h1>" within 120 seconds, answering all along
    And the droid "page" runs the latest commit of the repository "page"
    And the droid "page" has an event saying "rebuild queued (follow)"
    When the git host calls the push hook of the droid "page" signed with the secret "not-the-secret-at-all"
    Then the answer is 403 naming the field "X-Hub-Signature-256"
    When a new commit on the repository "page" changes "index.html" to "<h1>page v3</h1>"
    And the git host calls the push hook of the droid "page" signed with its secret, as GitHub does
    Then the answer is 202
    And the droid "page" comes to answer "<h1>page v3</h1>" within 120 seconds, answering all along
