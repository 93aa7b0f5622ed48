// Passkeys (WebAuthn) in the console, without inline script. A section
// with data-webauthn="login" signs in with a passkey after the password; one
// with data-webauthn="register" adds a passkey to the signed-in user. The
// ceremonies are the JSON API's (/api/v1/auth/webauthn/...), fetched from
// this origin with the session cookie; binary fields travel as base64url.
// After success the page goes to data-next, or submits the form named by
// data-codes (new recovery codes, shown once). Messages are set with
// textContent only.
(function () {
  "use strict";

  function fromB64url(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) {
      s += "=";
    }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function toB64url(buf) {
    if (!buf) {
      return null;
    }
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // api POSTs body (a string or null) and resolves with the parsed JSON
  // answer, or rejects with the API's error message.
  function api(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: body === null ? "{}" : body
    }).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try {
          data = text ? JSON.parse(text) : {};
        } catch (e) {
          data = null;
        }
        if (!res.ok) {
          var msg = data && data.error && data.error.message ? data.error.message : "the server refused (" + res.status + ")";
          throw new Error(msg);
        }
        return data || {};
      });
    });
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: fromB64url(c.id) };
      if (c.transports) {
        d.transports = c.transports;
      }
      return d;
    });
  }

  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromB64url(pk.challenge);
    pk.user.id = fromB64url(pk.user.id);
    pk.excludeCredentials = descriptors(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromB64url(pk.challenge);
    pk.allowCredentials = descriptors(pk.allowCredentials);
    return { publicKey: pk };
  }

  function attestationJSON(cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        attestationObject: toB64url(r.attestationObject)
      },
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
    if (r.getTransports) {
      out.response.transports = r.getTransports();
    }
    if (cred.authenticatorAttachment) {
      out.authenticatorAttachment = cred.authenticatorAttachment;
    }
    return JSON.stringify(out);
  }

  function assertionJSON(cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        authenticatorData: toB64url(r.authenticatorData),
        signature: toB64url(r.signature),
        userHandle: toB64url(r.userHandle)
      },
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
    if (cred.authenticatorAttachment) {
      out.authenticatorAttachment = cred.authenticatorAttachment;
    }
    return JSON.stringify(out);
  }

  function explain(err) {
    if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) {
      return "The passkey was not used (cancelled or timed out). Try again.";
    }
    if (err && err.name === "InvalidStateError") {
      return "This passkey is already registered.";
    }
    return "Passkey failed: " + (err && err.message ? err.message : "unknown error") + ".";
  }

  function done(section) {
    var codes = section.getAttribute("data-codes");
    var form = codes ? document.getElementById(codes) : null;
    if (form) {
      form.submit();
      return;
    }
    window.location.assign(section.getAttribute("data-next") || "/");
  }

  function wire(section) {
    var kind = section.getAttribute("data-webauthn");
    var button = section.querySelector("button");
    var msg = section.querySelector(".error");
    if (!button) {
      return;
    }
    function show(text) {
      if (msg) {
        msg.textContent = text;
        msg.hidden = !text;
      }
    }
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      show("This browser does not support passkeys.");
      return;
    }
    button.addEventListener("click", function () {
      button.disabled = true;
      show("");
      var run;
      if (kind === "register") {
        var nameInput = section.querySelector("input");
        var name = nameInput && nameInput.value.trim() ? nameInput.value.trim() : "Passkey";
        run = api("/api/v1/auth/webauthn/register/begin", null).then(function (o) {
          return navigator.credentials.create(creationOptions(o));
        }).then(function (cred) {
          return api("/api/v1/auth/webauthn/register/finish?name=" + encodeURIComponent(name), attestationJSON(cred));
        });
      } else {
        run = api("/api/v1/auth/webauthn/login/begin", null).then(function (o) {
          return navigator.credentials.get(requestOptions(o));
        }).then(function (cred) {
          return api("/api/v1/auth/webauthn/login/finish", assertionJSON(cred));
        });
      }
      run.then(function () {
        done(section);
      }, function (err) {
        button.disabled = false;
        show(explain(err));
      });
    });
  }

  var sections = document.querySelectorAll("[data-webauthn]");
  for (var i = 0; i < sections.length; i++) {
    wire(sections[i]);
  }
})();
