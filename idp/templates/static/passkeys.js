// Passkeys on the hosted pages (WebAuthn Level 3). Progressive: the pages work without JavaScript; this
// script reveals the passkey controls only where the browser has WebAuthn. The server sends options as
// PublicKeyCredential*OptionsJSON (base64url binary fields); the browser's answer goes back as JSON in a
// hidden field of an ordinary form post, so the server answers with the same 303s as the password form.
(function () {
  "use strict";

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return { type: d.type, id: toBytes(d.id), transports: d.transports };
    });
  }

  function creationOptions(o) {
    var copy = Object.assign({}, o);
    copy.challenge = toBytes(o.challenge);
    copy.user = Object.assign({}, o.user, { id: toBytes(o.user.id) });
    copy.excludeCredentials = descriptors(o.excludeCredentials);
    return copy;
  }

  function requestOptions(o) {
    var copy = Object.assign({}, o);
    copy.challenge = toBytes(o.challenge);
    copy.allowCredentials = descriptors(o.allowCredentials);
    return copy;
  }

  function credentialJSON(cred) {
    var r = cred.response, response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return JSON.stringify({
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type, response: response,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    });
  }

  function showError(form, text) {
    var box = form.querySelector("[data-passkey-error]");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
  }

  // POST the form's CSRF token to the options endpoint: { ceremony, publicKey } or { error }.
  function options(form) {
    var body = new URLSearchParams();
    body.set("csrf", form.elements.csrf.value);
    if (form.elements.interaction) body.set("interaction", form.elements.interaction.value);
    return fetch(form.getAttribute("data-options"), {
      method: "POST", body: body, credentials: "same-origin", headers: { accept: "application/json" },
    }).then(function (res) {
      return res.json().then(function (data) {
        if (!res.ok) throw new Error(data.error || "The passkey request could not be started.");
        return data;
      });
    });
  }

  function finish(form, ceremony, cred) {
    form.elements.ceremony.value = ceremony;
    form.elements.credential.value = credentialJSON(cred);
    form.submit();
  }

  function cancelled(err) {
    return err && (err.name === "NotAllowedError" || err.name === "AbortError");
  }

  var supported = !!(window.PublicKeyCredential && navigator.credentials);
  if (supported) {
    document.querySelectorAll("[data-passkey-unsupported]").forEach(function (el) { el.hidden = true; });
  }

  // Sign in with a passkey: a button (a modal request) and, where offered, the username field's autofill.
  var signin = document.querySelector("form[data-passkey-signin]");
  if (signin && supported) {
    signin.hidden = false;
    document.querySelectorAll("[data-passkey-only]").forEach(function (el) { el.hidden = false; });
    var pending = null;

    var get = function (mediation) {
      if (pending) pending.abort();
      var controller = new AbortController();
      pending = controller;
      return options(signin).then(function (data) {
        var request = { publicKey: requestOptions(data.publicKey), signal: controller.signal };
        if (mediation) request.mediation = mediation;
        return navigator.credentials.get(request).then(function (cred) {
          if (cred) finish(signin, data.ceremony, cred);
        });
      });
    };

    signin.addEventListener("submit", function (event) {
      event.preventDefault();
      get(null).catch(function (err) {
        showError(signin, cancelled(err) ? "No passkey was used. You can try again or use your password."
                                         : (err.message || "The passkey could not be used."));
      });
    });

    if (signin.hasAttribute("data-conditional") && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (ok) get("conditional").catch(function () { /* aborted by the button, or dismissed */ });
      });
    }
  }

  // Add a passkey from the account page.
  var register = document.querySelector("form[data-passkey-register]");
  if (register && supported) {
    register.hidden = false;
    register.addEventListener("submit", function (event) {
      event.preventDefault();
      options(register).then(function (data) {
        return navigator.credentials.create({ publicKey: creationOptions(data.publicKey) }).then(function (cred) {
          finish(register, data.ceremony, cred);
        });
      }).catch(function (err) {
        showError(register, cancelled(err) ? "No passkey was created. You can try again."
                                           : (err.message || "The passkey could not be created."));
      });
    });
  }
})();
