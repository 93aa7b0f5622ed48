// admin.js: the directory admin pages (people, devices, teams). A page
// that shows a secret once (a new device's credentials, an enrolment
// token) is the answer to a POST: the history entry is replaced with the
// plain list page, so that reloading or going back asks for that page
// (GET) instead of re-sending the form, and the secret is not shown again.
(function () {
  "use strict";
  var once = document.querySelector(".once[data-after]");
  if (once && window.history && window.history.replaceState) {
    var after = once.getAttribute("data-after");
    if (after && after.charAt(0) === "/" && after.charAt(1) !== "/") {
      window.history.replaceState(null, "", after);
    }
  }
})();
