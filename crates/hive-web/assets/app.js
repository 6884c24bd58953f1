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

document.addEventListener("DOMContentLoaded", () => {
  fillFromFragment();
  wireCopyButtons();
});
