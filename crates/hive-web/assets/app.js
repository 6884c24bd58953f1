// The dashboard's own script: only what a form cannot do.
"use strict";

// Fills inputs marked data-fragment="name" from the URL fragment (#name=value), then drops the
// fragment from the address bar and history: the setup token never reaches the server in a URL.
function fillFromFragment() {
  if (!location.hash) return;
  const values = new URLSearchParams(location.hash.slice(1));
  let used = false;
  for (const input of document.querySelectorAll("input[data-fragment]")) {
    const value = values.get(input.dataset.fragment);
    if (value) {
      input.value = value;
      used = true;
    }
  }
  if (used) history.replaceState(null, "", location.pathname + location.search);
}

// Buttons with data-copy="id" copy the text of the element with that id.
function wireCopyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source || !navigator.clipboard) return;
      const text = source.tagName === "OL"
        ? Array.from(source.querySelectorAll("li")).map((li) => li.textContent.trim()).join("\n")
        : source.textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Copy failed: select the text instead";
      }
    });
  }
}

// Reads a Server-Sent Events body, calling onEvent(name, data) for each event in order.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// The chat form: sends the message to the chat API and shows the reply as it streams in.
function wireChat() {
  const form = document.getElementById("chat-form");
  if (!form) return;
  const list = document.getElementById("messages");
  const problem = document.getElementById("chat-error");
  const input = document.getElementById("chat-text");
  const button = form.querySelector("button");
  const append = (kind, who, text) => {
    const item = document.createElement("li");
    item.className = kind;
    const label = document.createElement("span");
    label.className = "visually-hidden";
    label.textContent = who;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.append(label, " ", body);
    list.append(item);
    return body;
  };
  const fail = (message) => {
    problem.textContent = message;
    problem.hidden = false;
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    problem.hidden = true;
    button.disabled = true;
    append("from-you", "You:", text);
    const reply = append("from-agent", "Agent:", "");
    reply.parentElement.setAttribute("aria-busy", "true");
    input.value = "";
    const request = { text };
    if (form.dataset.conversation) request.conversationId = form.dataset.conversation;
    try {
      const response = await fetch(`/api/v1/agents/${form.dataset.agent}/chat`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify(request),
        credentials: "same-origin",
      });
      if (!response.ok) {
        const answer = await response.json().catch(() => null);
        throw new Error(answer?.error?.message || `The chat answered ${response.status}.`);
      }
      await readEvents(response.body, (name, data) => {
        if (name === "conversation") {
          form.dataset.conversation = data.conversation.id;
          history.replaceState(null, "", `?conversation=${data.conversation.id}`);
        } else if (name === "delta") {
          reply.textContent += data.text;
        } else if (name === "reply") {
          reply.textContent = data.text;
          // As the history shows it: a reply that is not an answer says so.
          if (["failed", "rejected", "refused", "interrupted"].includes(data.state)) {
            const state = document.createElement("em");
            state.textContent = `(${data.state})`;
            reply.after(" ", state);
          }
        } else if (name === "error") {
          fail(`The agent's answer ended in an error: ${data.message}`);
        }
      });
    } catch (error) {
      fail(error.message);
    } finally {
      reply.parentElement.removeAttribute("aria-busy");
      button.disabled = false;
    }
  });
}

// WebAuthn wants bytes where the API's JSON has base64url text, and the other way back.
function bytesOf(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
}

function textOf(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function creationOptions(options) {
  return {
    ...options,
    challenge: bytesOf(options.challenge),
    user: { ...options.user, id: bytesOf(options.user.id) },
    excludeCredentials: (options.excludeCredentials || []).map((c) => ({ ...c, id: bytesOf(c.id) })),
  };
}

function requestOptions(options) {
  return {
    ...options,
    challenge: bytesOf(options.challenge),
    allowCredentials: (options.allowCredentials || []).map((c) => ({ ...c, id: bytesOf(c.id) })),
  };
}

// The browser's answer as the API reads it: the same fields, bytes as base64url.
function answerOf(credential) {
  const { response } = credential;
  const fields = { clientDataJSON: textOf(response.clientDataJSON) };
  if (response.attestationObject) {
    fields.attestationObject = textOf(response.attestationObject);
  } else {
    fields.authenticatorData = textOf(response.authenticatorData);
    fields.signature = textOf(response.signature);
    if (response.userHandle) fields.userHandle = textOf(response.userHandle);
  }
  return {
    id: credential.id,
    rawId: textOf(credential.rawId),
    type: credential.type,
    response: fields,
    extensions: credential.getClientExtensionResults(),
  };
}

// POSTs JSON to the API with the session cookie; a refusal throws with the API's message.
async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  const answer = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(answer?.error?.message || `Hive answered ${response.status}.`);
    error.code = answer?.error?.code;
    throw error;
  }
  return answer;
}

// The three passkey ceremonies, each a start (options from Hive), the browser's dialog, and
// a finish (the answer to Hive), then on to where the button says.
const passkeyCeremonies = {
  async register(button) {
    const name = document.getElementById(button.dataset.passkeyName)?.value.trim();
    const start = await post("/api/v1/auth/passkeys/register/start");
    const credential = await navigator.credentials.create({ publicKey: creationOptions(start.publicKey) });
    await post("/api/v1/auth/passkeys/register/finish",
      { ceremonyId: start.ceremonyId, credential: answerOf(credential), name: name || undefined });
    return button.dataset.next;
  },
  async login(button) {
    const start = await post("/api/v1/auth/passkey-login/start");
    const credential = await navigator.credentials.get({ publicKey: requestOptions(start.publicKey) });
    await post("/api/v1/auth/passkey-login/finish", { ceremonyId: start.ceremonyId, credential: answerOf(credential) });
    // The sign-in page sends the new session on to its next step.
    return `/login?next=${encodeURIComponent(button.dataset.next || "/")}`;
  },
  async "second-factor"(button) {
    const start = await post("/api/v1/auth/mfa/passkey/start");
    const credential = await navigator.credentials.get({ publicKey: requestOptions(start.publicKey) });
    await post("/api/v1/auth/mfa/passkey/finish", { ceremonyId: start.ceremonyId, credential: answerOf(credential) });
    return button.dataset.next || "/";
  },
};

function wirePasskeys() {
  const problem = document.getElementById("passkey-error");
  for (const button of document.querySelectorAll("button[data-passkey]")) {
    if (!window.PublicKeyCredential) {
      button.disabled = true;
      problem.textContent = "This browser cannot use passkeys.";
      problem.hidden = false;
      continue;
    }
    button.addEventListener("click", async () => {
      problem.hidden = true;
      button.disabled = true;
      try {
        location.assign(await passkeyCeremonies[button.dataset.passkey](button));
      } catch (error) {
        problem.textContent = error.name === "NotAllowedError"
          ? "No passkey was used: the request was cancelled or timed out. Try again."
          : error.message;
        problem.hidden = false;
        if (error.code === "reauthentication_required") {
          document.getElementById("passkey-reauthenticate").hidden = false;
        }
        button.disabled = false;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  fillFromFragment();
  wireCopyButtons();
  wireChat();
  wirePasskeys();
});
