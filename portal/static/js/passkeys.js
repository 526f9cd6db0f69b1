// Passkeys (WebAuthn): add one to a login, prove one as the second step, or sign in with one
// alone. A static file, so the Content-Security-Policy keeps refusing inline script (H1).
// A button carries `data-passkey="create"` or `data-passkey="get"`, the URL that makes the
// options (`data-options`) and the URL that checks the browser's answer (`data-finish`);
// the server answers {location} to go on to, or {error} to show. Buttons stay hidden where
// the browser has no passkeys: every page still works with its password and code forms.
(function () {
  "use strict";

  function toBytes(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    var wrapper = document.querySelector("[hx-headers]");
    try {
      return JSON.parse(wrapper.getAttribute("hx-headers"))["X-CSRFToken"] || "";
    } catch (err) {
      return "";
    }
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
  }

  function creationOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    (options.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return { publicKey: options };
  }

  function requestOptions(options) {
    options.challenge = toBytes(options.challenge);
    (options.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return { publicKey: options, mediation: "optional" };
  }

  function created(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toText(response.clientDataJSON),
        attestationObject: toText(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : [],
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function asserted(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toText(response.clientDataJSON),
        authenticatorData: toText(response.authenticatorData),
        signature: toText(response.signature),
        userHandle: response.userHandle ? toText(response.userHandle) : null,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function say(button, message) {
    var status = document.getElementById(button.getAttribute("data-status") || "");
    if (status) status.textContent = message;
  }

  function answer(response) {
    return response.json().then(function (body) {
      if (body.location) {
        var target = new URL(body.location, window.location.href);
        var here = window.location;
        if (target.pathname === here.pathname && target.search === here.search) {
          here.hash = target.hash; // the same page: load it again for its notice
          here.reload();
        } else {
          here.assign(target.href);
        }
        return "";
      }
      return body.error || "That did not work. Please try again.";
    });
  }

  function run(button) {
    var kind = button.getAttribute("data-passkey");
    var nameInput = document.getElementById(button.getAttribute("data-name") || "");
    button.disabled = true;
    say(button, "");
    post(button.getAttribute("data-options"))
      .then(function (response) {
        if (!response.ok) throw new Error("options");
        return response.json();
      })
      .then(function (options) {
        if (kind === "create") return navigator.credentials.create(creationOptions(options));
        return navigator.credentials.get(requestOptions(options));
      })
      .then(function (credential) {
        if (kind === "create") {
          return post(button.getAttribute("data-finish"), {
            credential: created(credential),
            name: nameInput ? nameInput.value : "",
          });
        }
        return post(button.getAttribute("data-finish"), asserted(credential));
      })
      .then(answer)
      .then(function (message) {
        if (message) say(button, message);
      })
      .catch(function (err) {
        say(
          button,
          err && err.name === "NotAllowedError"
            ? "The passkey was cancelled or timed out."
            : "That did not work. Please try again."
        );
      })
      .finally(function () {
        button.disabled = false;
      });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-passkey]");
    if (!button) return;
    event.preventDefault();
    run(button);
  });

  function reveal() {
    if (!window.PublicKeyCredential) return;
    document.querySelectorAll("[data-passkey-only]").forEach(function (el) {
      el.hidden = false;
    });
  }

  document.addEventListener("DOMContentLoaded", reveal);
  document.addEventListener("htmx:load", reveal);
})();
