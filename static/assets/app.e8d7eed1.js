// edgecache demo: renders the Products section from GET /api/products and
// shows the edge's cache headers (X-Cache, Cache-Status, Age) after every fetch.
// Plain JavaScript, no framework, no build step.
"use strict";

(() => {
  const API = "/api/products";
  const section = document.getElementById("products");
  if (!section) return;

  const view = section.querySelector("[data-products-view]");
  const reloadButton = section.querySelector("[data-reload]");
  const info = {
    request: section.querySelector("[data-cache='request']"),
    xcache: section.querySelector("[data-cache='x-cache']"),
    status: section.querySelector("[data-cache='cache-status']"),
    age: section.querySelector("[data-cache='age']"),
  };
  const log = section.querySelector("[data-log]");
  const LOG_MAX = 8;

  class ApiError extends Error {}

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (key === "class") node.className = value;
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key in node) node[key] = value;
        else node.setAttribute(key, value);
      }
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function badgeClass(value) {
    const v = (value || "").toUpperCase();
    if (v.includes("HIT") || v.includes("REVALIDATED")) return "badge hit";
    if (v.includes("MISS") || v.includes("EXPIRED") || v.includes("STALE")) return "badge miss";
    return "badge other";
  }

  // Show the cache headers of one response next to the table, and keep a short history.
  function showCache(method, url, res) {
    const xcache = res ? res.headers.get("X-Cache") : null;
    const status = res ? res.headers.get("Cache-Status") : null;
    const age = res ? res.headers.get("Age") : null;
    const code = res ? String(res.status) : "network error";

    if (info.request) info.request.textContent = `${method} ${url} \u2192 ${code}`;
    if (info.xcache) {
      info.xcache.replaceChildren(
        xcache ? el("span", { class: badgeClass(xcache) }, xcache) : el("span", { class: "muted" }, "(absent)")
      );
    }
    if (info.status) info.status.textContent = status || "(absent)";
    if (info.age) info.age.textContent = age === null ? "(absent)" : age;

    if (log) {
      const time = new Date().toLocaleTimeString();
      const line = `${time}  ${method} ${url} ${code}  X-Cache: ${xcache || "-"}  Age: ${age ?? "-"}  Cache-Status: ${status || "-"}`;
      log.prepend(el("li", null, line));
      while (log.children.length > LOG_MAX) log.lastElementChild.remove();
    }
  }

  // One request to the API. Returns the parsed JSON body (or null), or throws ApiError
  // with a message suitable to show to the visitor.
  async function request(method, url, body) {
    const init = {
      method,
      headers: { Accept: "application/json" },
      // Skip the browser's own HTTP cache so every fetch reaches the edge and the
      // headers shown are the edge's verdict for this request.
      cache: "no-store",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }

    let res;
    try {
      res = await fetch(url, init);
    } catch (err) {
      showCache(method, url, null);
      throw new ApiError(
        `Could not reach ${url} (${err && err.message ? err.message : "network error"}). ` +
          "The edge may be stopped, or the API may not be configured."
      );
    }
    showCache(method, url, res);

    if (!res.ok) {
      const reason = `HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}`;
      if (res.status === 404 || res.status === 405 || res.status === 501) {
        throw new ApiError(`The products API is not available on this edge yet (${reason}).`);
      }
      throw new ApiError(`The products API answered ${method} ${url} with ${reason}.`);
    }
    if (res.status === 204) return null;

    const text = await res.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(`The products API answered ${method} ${url} with something that is not JSON.`);
    }
  }

  function notice(message, isError) {
    return el(
      "div",
      { class: isError ? "notice error" : "notice", role: "status" },
      el("p", null, el("strong", null, isError ? "Products are unavailable right now." : message)),
      isError ? el("p", null, message) : null,
      isError
        ? el("p", { class: "muted" }, "The rest of this site is static and is served by the edge regardless. Use \u201cReload\u201d to try again.")
        : null
    );
  }

  function formatPrice(cents) {
    return Number.isInteger(cents) ? (cents / 100).toFixed(2) : "?";
  }

  function isProduct(p) {
    return (
      p !== null &&
      typeof p === "object" &&
      Number.isInteger(p.id) &&
      typeof p.name === "string" &&
      Number.isInteger(p.price_cents) &&
      Number.isInteger(p.stock)
    );
  }

  function editForm(product) {
    const input = el("input", {
      type: "number",
      min: "0",
      step: "0.01",
      required: true,
      value: formatPrice(product.price_cents),
      "aria-label": `New price for ${product.name}`,
    });
    const button = el("button", { type: "submit" }, "Save");
    const form = el("form", { class: "edit" }, input, button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      savePrice(product, input, button);
    });
    return form;
  }

  function render(products) {
    if (products.length === 0) {
      view.replaceChildren(notice("The API returned an empty product list.", false));
      return;
    }
    const rows = products.map((p) =>
      el(
        "tr",
        null,
        el("td", { class: "num" }, p.id),
        el("td", null, p.name),
        el("td", { class: "num" }, formatPrice(p.price_cents)),
        el("td", { class: "num" }, p.stock),
        el("td", { class: "hide-sm muted" }, typeof p.updated_at === "string" ? p.updated_at : ""),
        el("td", null, editForm(p))
      )
    );
    const table = el(
      "table",
      null,
      el(
        "thead",
        null,
        el(
          "tr",
          null,
          el("th", { class: "num", scope: "col" }, "ID"),
          el("th", { scope: "col" }, "Name"),
          el("th", { class: "num", scope: "col" }, "Price"),
          el("th", { class: "num", scope: "col" }, "Stock"),
          el("th", { class: "hide-sm", scope: "col" }, "Updated"),
          el("th", { scope: "col" }, "Edit price")
        )
      ),
      el("tbody", null, ...rows)
    );
    view.replaceChildren(table);
  }

  let loading = false;

  async function loadProducts() {
    if (loading) return;
    loading = true;
    if (reloadButton) reloadButton.disabled = true;
    try {
      const data = await request("GET", API);
      if (!Array.isArray(data)) {
        throw new ApiError("The products API did not return a JSON array.");
      }
      const products = data.filter(isProduct);
      render(products);
      if (products.length !== data.length) {
        view.prepend(notice(`${data.length - products.length} malformed product(s) were skipped.`, false));
      }
    } catch (err) {
      view.replaceChildren(notice(err instanceof ApiError ? err.message : `Unexpected error: ${err}`, true));
      if (!(err instanceof ApiError)) console.error(err);
    } finally {
      loading = false;
      if (reloadButton) reloadButton.disabled = false;
    }
  }

  async function savePrice(product, input, button) {
    const value = Number.parseFloat(input.value);
    if (!Number.isFinite(value) || value < 0) {
      input.setCustomValidity("Enter a price of 0 or more.");
      input.reportValidity();
      return;
    }
    input.setCustomValidity("");
    const body = {
      name: product.name,
      price_cents: Math.round(value * 100),
      stock: product.stock,
    };
    button.disabled = true;
    input.disabled = true;
    try {
      await request("PUT", `${API}/${encodeURIComponent(product.id)}`, body);
      await loadProducts();
    } catch (err) {
      const message = err instanceof ApiError ? err.message : `Unexpected error: ${err}`;
      for (const old of view.querySelectorAll(".save-error")) old.remove();
      view.prepend(
        el(
          "div",
          { class: "notice error save-error", role: "alert" },
          el("p", null, `Could not update \u201c${product.name}\u201d: ${message}`)
        )
      );
      button.disabled = false;
      input.disabled = false;
    }
  }

  if (reloadButton) reloadButton.addEventListener("click", loadProducts);
  loadProducts();
})();
