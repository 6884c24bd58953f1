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

document.addEventListener("DOMContentLoaded", () => {
  fillFromFragment();
  wireCopyButtons();
  wireChat();
});
