// A fine-tune run's page while the run is active: ask its JSON status now and then, and
// reload the page (the server draws the new loss curve) when the step or the status moved.
(function () {
  "use strict";
  var box = document.querySelector("[data-status-url]");
  if (!box) {
    return;
  }
  var url = box.getAttribute("data-status-url");
  var seen = box.getAttribute("data-status") + "@" + box.getAttribute("data-step");
  var period = parseInt(box.getAttribute("data-refresh-ms"), 10) || 5000;

  function later(ms) {
    window.setTimeout(poll, ms);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (state) {
        if (state.status + "@" + state.step !== seen) {
          window.location.reload();
        } else if (state.active) {
          later(period);
        }
      })
      .catch(function () {
        later(period * 4); // signed out or the portal restarting: try again, more slowly
      });
  }

  later(period);
})();
