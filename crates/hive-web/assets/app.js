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

// A hosted agent's bundle: a page form's body is capped far below a bundle's size, so the file
// goes to the API's upload route as it is; the page then shows the new version.
function wireBundleUpload() {
  const form = document.getElementById("bundle-form");
  if (!form) return;
  const problem = document.getElementById("bundle-error");
  const progress = document.getElementById("bundle-progress");
  const button = form.querySelector("button");
  document.getElementById("bundle-needs-script").hidden = true;
  form.hidden = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) return;
    problem.hidden = true;
    button.disabled = true;
    progress.textContent = `Uploading ${file.name}…`;
    progress.hidden = false;
    try {
      const response = await fetch(`/api/v1/agents/${form.dataset.agent}/bundle`, {
        method: "PUT",
        headers: { "content-type": "application/gzip" },
        body: file,
        credentials: "same-origin",
      });
      if (!response.ok) {
        const answer = await response.json().catch(() => null);
        throw new Error(answer?.error?.message || `Hive answered ${response.status}.`);
      }
      location.reload();
    } catch (error) {
      progress.hidden = true;
      problem.textContent = `The bundle was not taken: ${error.message}`;
      problem.hidden = false;
      button.disabled = false;
    }
  });
}

// Lines the live log view keeps; older ones leave the page as new ones come.
const LOG_LINES_KEPT = 2000;

// A hosted agent's logs: after the lines the page came with, each new one as the agent prints
// it. Lines are the agent's own text: they go in as text, never as markup.
function followLogs() {
  const view = document.getElementById("log-view");
  if (!view) return;
  const list = document.getElementById("log-lines");
  view.scrollTop = view.scrollHeight;
  if (!view.dataset.follow) return;
  const status = document.getElementById("log-follow");
  let last = Number(view.dataset.after || 0);
  const query = view.dataset.after ? `?after=${encodeURIComponent(view.dataset.after)}` : "";
  const source = new EventSource(`/api/v1/agents/${view.dataset.agent}/logs/stream${query}`);
  let opened = Date.now();
  let received = false;
  status.textContent = "Following its output: new lines appear as it prints them.";
  status.hidden = false;
  source.addEventListener("open", () => {
    opened = Date.now();
    received = false;
  });
  source.addEventListener("log", (event) => {
    const line = JSON.parse(event.data);
    if (line.seq <= last) return;
    last = line.seq;
    received = true;
    const atEnd = view.scrollHeight - view.scrollTop - view.clientHeight < 24;
    const item = document.createElement("li");
    const at = document.createElement("span");
    at.className = "log-at";
    at.textContent = String(line.at).slice(0, 19).replace("T", " ");
    item.append(at, " ");
    if (line.stream === "stderr") {
      item.className = "stderr";
      const stream = document.createElement("span");
      stream.className = "log-stream";
      stream.textContent = "stderr";
      item.append(stream, " ");
    }
    const text = document.createElement("span");
    text.className = "log-text";
    text.textContent = line.text;
    item.append(text);
    list.append(item);
    document.getElementById("log-empty")?.remove();
    while (list.childElementCount > LOG_LINES_KEPT) list.firstElementChild.remove();
    if (atEnd) view.scrollTop = view.scrollHeight;
  });
  // The stream ends when the agent does not run on the replica that answers: a refusal, or an
  // end that came at once with nothing, stops the view; a stream that went quiet for long is
  // taken up again (the browser sends the last line's number).
  source.addEventListener("error", () => {
    const quick = !received && Date.now() - opened < 10_000;
    if (source.readyState === EventSource.CLOSED || quick) {
      source.close();
      status.textContent = "The live view stopped: the agent stopped, or runs on another replica. Reload the page to see newer lines.";
    }
  });
}

// A run's statuses that end it.
const RUN_ENDED = ["succeeded", "failed", "cancelled"];

// A time of the API's JSON as the pages write it: to the second, UTC.
function shortTime(at) {
  return at ? new Date(at).toISOString().slice(0, 19).replace("T", " ") : "";
}

// A workflow run's page: its steps and status as the run goes, from the API's event stream.
// Everything from the stream goes in as text.
function followRun() {
  const section = document.getElementById("run");
  if (!section || !section.dataset.follow) return;
  const rows = document.querySelector("#steps tbody");
  const status = document.getElementById("run-follow");
  const pretty = (value) => (value === null || value === undefined ? "" : JSON.stringify(value, null, 2));
  const setState = (element, value) => {
    element.textContent = value;
    element.className = element.className.replace(/\bstate-\S+/, `state-${value}`);
  };
  const rowOf = (key) => {
    for (const row of rows.rows) if (row.dataset.step === key) return row;
    const row = rows.insertRow();
    row.dataset.step = key;
    const cell = (name) => {
      const td = row.insertCell();
      if (name) td.className = name;
      return td;
    };
    const code = document.createElement("code");
    code.textContent = key;
    cell("step-key").append(code);
    const state = document.createElement("span");
    state.className = "state step-status state-queued";
    cell().append(state);
    for (const name of ["step-attempt", "step-started", "step-finished", "step-branch", "step-error"]) cell(name);
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = ` of ${key}`;
    summary.append("Input and output", hidden);
    details.append(summary);
    for (const [label, name] of [["Input", "step-input"], ["Output", "step-output"]]) {
      const p = document.createElement("p");
      p.textContent = label;
      const pre = document.createElement("pre");
      pre.className = name;
      details.append(p, pre);
    }
    cell("step-data").append(details);
    document.getElementById("steps-empty").hidden = true;
    return row;
  };
  const showStep = (step) => {
    const row = rowOf(step.key);
    setState(row.querySelector(".step-status"), step.status);
    row.querySelector(".step-attempt").textContent = step.attempt;
    row.querySelector(".step-started").textContent = shortTime(step.startedAt);
    row.querySelector(".step-finished").textContent = shortTime(step.finishedAt);
    row.querySelector(".step-branch").textContent = step.branch || "";
    row.querySelector(".step-error").textContent = step.error || "";
    row.querySelector(".step-input").textContent = pretty(step.input);
    row.querySelector(".step-output").textContent = pretty(step.output);
    // An approval waiting for a decision shows its buttons (or who may decide).
    for (const approval of document.querySelectorAll("[data-approval]")) {
      if (approval.dataset.approval !== step.key) continue;
      approval.hidden = step.status !== "waiting";
      const message = approval.querySelector(".approval-message");
      if (message && step.input && step.input.message !== undefined) {
        message.textContent = typeof step.input.message === "string" ? step.input.message : JSON.stringify(step.input.message);
      }
    }
  };
  const showRun = (run) => {
    setState(document.getElementById("run-status"), run.status);
    document.getElementById("run-started").textContent = shortTime(run.startedAt);
    document.getElementById("run-finished").textContent = shortTime(run.finishedAt);
    document.getElementById("run-output").textContent = pretty(run.output);
    document.getElementById("run-error").textContent = run.error || "";
    document.getElementById("run-error-box").hidden = !run.error;
    const ended = RUN_ENDED.includes(run.status);
    for (const form of document.querySelectorAll("[data-run-action]")) {
      form.hidden = form.dataset.runAction === "cancel" ? ended : !["failed", "cancelled"].includes(run.status);
    }
    if (ended) {
      for (const approval of document.querySelectorAll("[data-approval]")) approval.hidden = true;
    }
    return ended;
  };
  const source = new EventSource(`/api/v1/workflow-runs/${section.dataset.run}/events`);
  status.textContent = "Following the run: steps appear as they start and end.";
  status.hidden = false;
  source.addEventListener("step", (event) => showStep(JSON.parse(event.data)));
  source.addEventListener("run", (event) => {
    if (showRun(JSON.parse(event.data))) {
      source.close();
      status.textContent = "The run has ended.";
    }
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      status.textContent = "The live view stopped: reload the page to see where the run is.";
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  fillFromFragment();
  wireCopyButtons();
  wireChat();
  wirePasskeys();
  wireBundleUpload();
  followLogs();
  followRun();
});
