// facegate console: progressive enhancement only; every page works without this script.
// The rule editor asks the server for diagnostics as one types (same checks as `facegate check`).
(function () {
  "use strict";
  function editor() {
    var form = document.getElementById("editor");
    var area = document.getElementById("yaml");
    var out = document.getElementById("diagnostics");
    if (!form || !area || !out) return;
    var timer = null, seq = 0;
    function run() {
      var mine = ++seq;
      var body = new URLSearchParams(new FormData(form));
      body.delete("action");
      out.setAttribute("aria-busy", "true");
      fetch(form.dataset.check, { method: "POST", body: body, credentials: "same-origin",
                                  headers: { "X-CSRF-Token": form.elements.csrf.value } })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          if (mine !== seq) return;  // a newer check is on its way
          out.innerHTML = html;
          out.removeAttribute("aria-busy");
        })
        .catch(function () { out.removeAttribute("aria-busy"); });
    }
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(run, 400);
    });
    area.addEventListener("keydown", function (ev) {  // Tab indents; Esc then Tab leaves the editor
      if (ev.key === "Tab" && !ev.shiftKey && !area.dataset.escaped) {
        ev.preventDefault();
        var s = area.selectionStart;
        area.setRangeText("  ", s, area.selectionEnd, "end");
        area.dispatchEvent(new Event("input"));
      } else if (ev.key === "Escape") {
        area.dataset.escaped = "1";
      } else {
        delete area.dataset.escaped;
      }
    });
    run();
  }
  document.addEventListener("DOMContentLoaded", editor);
})();
