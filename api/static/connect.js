/*
 * The connect page's script: log in at the provider, answer its questions, follow the link.
 *
 * The link token arrives in the URL fragment (#token=...), which browsers never send to a server
 * nor put in a Referer; the script reads it from location.hash and sends it only in an
 * Authorization header. The link is followed through the API's server-sent events, read with
 * fetch() because EventSource cannot send headers. Nothing secret is kept: sessionStorage holds
 * only the prompts and ids of the challenges answered last, to tell a re-asked question from a
 * new one after a reload.
 */
"use strict";

(() => {
  const PROVIDERS = {
    mx: { name: "MX", extra: [] },
    synapse: { name: "Synapse", extra: [] },
    arcadia: { name: "Arcadia", extra: [] },
    teal: { name: "Teal", extra: [] },
    unbill: { name: "Unbill", extra: [] },
  };
  const ANSWERED_KINDS = new Set(["text", "secret", "code", "options", "image_options", "device_choice"]);
  const CHOICE_KINDS = new Set(["options", "image_options", "device_choice"]);
  const ENDED = new Set(["FAILED", "UNLINKED"]);
  const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

  const titleElement = document.getElementById("title");
  const statusElement = document.getElementById("status");
  const screenElement = document.getElementById("screen");
  const providerElement = document.getElementById("provider");
  const connectionElement = document.getElementById("connection");

  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const token = fragment.get("token");

  const state = {
    session: null, // { link_id, provider, mode, actions, expires_at }
    snapshot: null,
    screenKey: null,
    busy: false,
    following: false,
    streamAbort: null,
    deadlineTimer: null,
    announcedMinute: false,
    retryUntil: 0,
    unanswered: null, // { action, key } of a try that got no answer
  };

  // ---------------------------------------------------------------- small helpers

  function h(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "text") element.textContent = value;
      else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return element;
  }

  function providerName() {
    const provider = state.session && state.session.provider;
    return (PROVIDERS[provider] && PROVIDERS[provider].name) || "your provider";
  }

  function announce(message) {
    // Cleared first, so that the same sentence twice is read twice.
    statusElement.textContent = "";
    window.setTimeout(() => {
      statusElement.textContent = message;
    }, 30);
  }

  function newKey() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return "page-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /**
   * The Idempotency-Key for an action: a new one, unless the same action's last try got no
   * answer (a network failure, or a 504 after which the link may still act): that try is
   * repeated under its own key, so the link never acts twice.
   */
  function keyFor(action) {
    if (state.unanswered && state.unanswered.action === action) return state.unanswered.key;
    return newKey();
  }

  function noteOutcome(action, key, result) {
    const unanswered = result.status === 0 || result.status === 504;
    state.unanswered = unanswered ? { action, key } : null;
  }

  function apiUrl(path) {
    return new URL(path, document.baseURI).toString();
  }

  function linkPath(suffix) {
    return "v1/links/" + encodeURIComponent(state.session.link_id) + (suffix || "");
  }

  function sleep(ms) {
    return new Promise((resolve) => window.setTimeout(resolve, ms));
  }

  /** One API call. Returns { ok, status, body, error, retryAfter }; never throws for HTTP. */
  async function api(method, path, body, idempotencyKey) {
    const headers = { Authorization: "Bearer " + token, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    let response;
    try {
      response = await fetch(apiUrl(path), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch (networkError) {
      return { ok: false, status: 0, body: null, error: null };
    }
    let parsed = null;
    try {
      parsed = await response.json();
    } catch (notJson) {
      parsed = null;
    }
    const error = parsed && parsed.error && typeof parsed.error === "object" ? parsed.error : null;
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    return {
      ok: response.ok,
      status: response.status,
      body: parsed,
      error,
      retryAfter: Number.isFinite(retryAfter) ? retryAfter : null,
    };
  }

  // ---------------------------------------------------------------- screens

  function show(title, key, ...content) {
    window.clearInterval(state.deadlineTimer);
    state.deadlineTimer = null;
    state.screenKey = key;
    titleElement.textContent = title;
    document.title = title + " · linkflow";
    screenElement.replaceChildren(...content.flat(Infinity).filter(Boolean));
  }

  function focusFirst(container) {
    const target =
      container.querySelector("[aria-invalid='true']") ||
      container.querySelector("input:not([type='hidden']):not([disabled]), a.button, button") ||
      titleElement;
    target.focus();
  }

  /** A problem that ends this page: an expired or foreign token, a missing one. */
  function showProblem(title, sentence, action) {
    stopFollowing();
    show(
      title,
      "problem:" + title,
      h("div", { class: "outcome failure" }, h("span", { class: "mark", "aria-hidden": "true", text: "!" }),
        h("p", { text: sentence })),
      action ? h("p", { class: "lead", text: action }) : null,
    );
    announce(title);
    titleElement.focus();
  }

  /**
   * Refusals that end this page: an expired, altered or foreign link token. The API's sentence
   * is written for the end user and says what to do; without one, the page says it.
   */
  function problemFromError(result) {
    const error = result.error || {};
    const advice = "Go back to the app you came from and start connecting again.";
    if (result.status === 401) {
      const expired = error.code === "link_token_expired";
      // A fragment that is no link token at all reads to the API as an unknown API key, whose
      // sentence is for developers: the page says what its user needs instead.
      const message = expired || error.code === "link_token_invalid" ? error.message : null;
      showProblem(
        expired ? "This page has expired" : "This link is not valid",
        message || (expired ? "This connection page is no longer valid." : "This connection link is damaged."),
        message ? null : advice,
      );
      return true;
    }
    if (result.status === 403 && error.code === "link_token_wrong_link") {
      showProblem(
        "This link is for another account",
        error.message || "This page cannot act on that account.",
        "Go back to the app you came from and open its latest link.",
      );
      return true;
    }
    return false;
  }

  function sentenceFor(result, fallback) {
    if (result.status === 0) return "We could not reach the connection service. Check your internet connection and try again.";
    if (result.status === 429) {
      const wait = result.retryAfter ?? 30;
      return `Too many tries. Wait ${wait} second${wait === 1 ? "" : "s"}, then try again.`;
    }
    if (result.error && result.error.message) return result.error.message;
    if (result.status >= 500) return "The connection service is not answering right now. Try again in a moment.";
    return fallback;
  }

  // ---------------------------------------------------------------- the login form

  function showLogin(mode) {
    const updating = mode === "update_credentials";
    const provider = state.session.provider;
    const extras = (PROVIDERS[provider] && PROVIDERS[provider].extra) || [];
    const formError = h("p", { class: "field-error", id: "login-error", role: "alert", hidden: true });
    const fields = [
      { name: "username", label: "Username", type: "text", autocomplete: "username" },
      {
        name: "password",
        label: updating ? "New password" : "Password",
        type: "password",
        autocomplete: updating ? "new-password" : "current-password",
      },
      ...extras.map((extra) => ({
        name: "extra." + extra.name,
        label: extra.label,
        type: extra.secret ? "password" : "text",
        autocomplete: "off",
        optional: extra.optional,
      })),
    ];
    const form = h(
      "form",
      { novalidate: true, id: "login-form" },
      fields.map((field) => fieldBlock(field)),
      formError,
      h("div", { class: "actions" }, h("button", { type: "submit", text: updating ? "Update and reconnect" : "Connect" })),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitLogin(form, fields, updating);
    });
    show(
      updating ? `Update your ${providerName()} login` : `Log in to ${providerName()}`,
      "login:" + mode,
      h("p", {
        class: "lead",
        text: updating
          ? (state.snapshot && state.snapshot.message) || `${providerName()} no longer accepts the login it had. Enter the new one.`
          : `Enter the username and password you use at ${providerName()}.`,
      }),
      form,
    );
    const refusedAgain = updating && state.loginRefused;
    const refusedFirst = mode === "start-again";
    if (refusedAgain || refusedFirst) {
      // The provider turned the login down: say so where it was typed, and let it be typed again.
      state.loginRefused = false;
      const refusedHere = `${providerName()} did not accept that login. Check it and try again.`;
      const message = (refusedFirst && state.snapshot && state.snapshot.message) || refusedHere;
      const username = form.elements.namedItem("username");
      username.value = state.lastUsername || "";
      setFieldError(form.elements.namedItem("password"), message);
      announce(message);
    }
    focusFirst(form);
  }

  function fieldBlock(field) {
    const id = "field-" + field.name.replace(/[^a-z0-9]/gi, "-");
    const errorId = id + "-error";
    return h(
      "div",
      { class: "field" },
      h("label", { for: id, text: field.label + (field.optional ? " (if you have one)" : "") }),
      h("input", {
        id,
        name: field.name,
        type: field.type,
        autocomplete: field.autocomplete,
        required: !field.optional,
        spellcheck: "false",
        autocapitalize: "none",
        "aria-describedby": errorId,
      }),
      h("p", { class: "field-error", id: errorId, hidden: true }),
    );
  }

  function setFieldError(input, message) {
    const error = document.getElementById(input.getAttribute("aria-describedby"));
    if (message) {
      input.setAttribute("aria-invalid", "true");
      if (error) {
        error.textContent = message;
        error.hidden = false;
      }
    } else {
      input.removeAttribute("aria-invalid");
      if (error) {
        error.textContent = "";
        error.hidden = true;
      }
    }
  }

  function clearErrors(form) {
    for (const input of form.querySelectorAll("input[aria-describedby]")) setFieldError(input, "");
    for (const notice of form.querySelectorAll("[role='alert']")) {
      notice.textContent = "";
      notice.hidden = true;
    }
  }

  function setFormError(form, message) {
    const notice = form.querySelector("[role='alert']");
    notice.textContent = message;
    notice.hidden = false;
  }

  async function submitLogin(form, fields, updating) {
    if (state.busy) return;
    clearErrors(form);
    const values = {};
    let firstMissing = null;
    for (const field of fields) {
      const input = form.elements.namedItem(field.name);
      const value = input.value;
      if (!field.optional && !value.trim()) {
        setFieldError(input, `Enter your ${field.label.toLowerCase()}.`);
        firstMissing = firstMissing || input;
      }
      values[field.name] = value;
    }
    if (firstMissing) {
      firstMissing.focus();
      announce("Some fields need your attention.");
      return;
    }
    const extra = {};
    for (const field of fields) {
      if (field.name.startsWith("extra.") && values[field.name]) extra[field.name.slice(6)] = values[field.name];
    }
    const credentials = { username: values.username.trim(), password: values.password };
    state.lastUsername = credentials.username;
    if (Object.keys(extra).length) credentials.extra = extra;
    setBusy(form, true, updating ? "Sending your new login…" : `Logging in to ${providerName()}…`);
    state.awaitingCredentials = updating;
    state.loginRefused = false;
    const action = updating ? "credentials" : "start";
    const key = keyFor(action);
    const result = updating
      ? await api("POST", linkPath("/credentials"), { credentials }, key)
      : await api("POST", "v1/links", { credentials }, key);
    noteOutcome(action, key, result);
    setBusy(form, false);
    if (result.ok && result.body && result.body.status) {
      forgetAnswers();
      accept(result.body);
      follow();
      return;
    }
    state.awaitingCredentials = false;
    if (problemFromError(result)) return;
    if (result.status === 409 && !updating) {
      // Started already (another tab, a retried request): the link is what it is; follow it.
      await refresh();
      follow();
      return;
    }
    const message = refusalSentence(result, "That login could not be sent. Check it and try again.");
    const fieldName = fieldNamed(result.error, fields);
    if (fieldName) {
      const input = form.elements.namedItem(fieldName);
      setFieldError(input, message);
      input.focus();
    } else {
      setFormError(form, message);
      form.querySelector("input").focus();
    }
    announce(message);
  }

  /** The form field an API refusal names (`credentials.password: ...`), if any. */
  function fieldNamed(error, fields) {
    const named = error && /\bcredentials\.(?:extra\.)?([A-Za-z0-9_-]+)/.exec(error.detail || "");
    if (!named) return null;
    const field = fields.find((candidate) => candidate.name.replace(/^extra\./, "") === named[1]);
    return field ? field.name : null;
  }

  /** The API's sentence for the user, made plain where it names a rule (a length, say). */
  function refusalSentence(result, fallback) {
    const longest = result.status === 422 && /at most (\d+)/.exec((result.error && result.error.detail) || "");
    if (longest) return `That is too long: use at most ${longest[1]} characters.`;
    return sentenceFor(result, fallback);
  }

  function setBusy(form, busy, message) {
    state.busy = busy;
    const submit = form.querySelector("button[type='submit']");
    for (const control of form.querySelectorAll("input, button")) control.disabled = busy;
    if (busy) {
      form.setAttribute("aria-busy", "true");
      if (submit) {
        submit.dataset.label = submit.textContent;
        submit.textContent = message;
      }
      announce(message);
    } else {
      form.removeAttribute("aria-busy");
      if (submit && submit.dataset.label) submit.textContent = submit.dataset.label;
    }
  }

  // ---------------------------------------------------------------- challenges

  function answeredKey() {
    return "linkflow-answered:" + state.session.link_id;
  }

  function rememberAnswers(challenges) {
    const remembered = challenges.map((challenge) => ({ id: challenge.id, prompt: challenge.prompt }));
    try {
      window.sessionStorage.setItem(answeredKey(), JSON.stringify(remembered));
    } catch (storageRefused) {
      state.rememberedInMemory = remembered;
    }
  }

  function rememberedAnswers() {
    try {
      const stored = window.sessionStorage.getItem(answeredKey());
      return stored ? JSON.parse(stored) : [];
    } catch (storageRefused) {
      return state.rememberedInMemory || [];
    }
  }

  function forgetAnswers() {
    try {
      window.sessionStorage.removeItem(answeredKey());
    } catch (storageRefused) {
      state.rememberedInMemory = [];
    }
  }

  /** Challenges the provider asked again after an answer: the answer was rejected. The link
   * says so itself (`after_rejected_answer`); the prompts remembered here also cover a page that
   * answered from another tab. */
  function rejectedChallengeIds(snapshot) {
    const answered = rememberedAnswers();
    const rejected = new Set();
    for (const challenge of snapshot.pending_challenges) {
      const again = answered.some((previous) => previous.prompt === challenge.prompt && previous.id !== challenge.id);
      if (challenge.after_rejected_answer || again) rejected.add(challenge.id);
    }
    return rejected;
  }

  function challengeBlock(challenge, index, rejected) {
    const id = "answer-" + index;
    const errorId = id + "-error";
    const rejectedNotice = rejected
      ? h("p", {
          class: "notice rejected",
          id: id + "-rejected",
          text: `${providerName()} did not accept your last answer to this question. Check it and try again.`,
        })
      : null;
    const picture = challenge.image_data_uri && /^data:image\//.test(challenge.image_data_uri)
      ? h("img", { class: "question-picture", src: challenge.image_data_uri, alt: "The picture this question is about" })
      : null;
    const describedBy = [rejected ? id + "-rejected" : null, errorId].filter(Boolean).join(" ");
    const common = { "data-challenge": challenge.id, "aria-describedby": describedBy };

    switch (challenge.kind) {
      case "text":
      case "secret":
      case "code": {
        const input = h("input", {
          ...common,
          id,
          name: id,
          type: challenge.kind === "secret" ? "password" : "text",
          autocomplete: challenge.kind === "code" ? "one-time-code" : "off",
          inputmode: challenge.kind === "code" ? "numeric" : null,
          spellcheck: "false",
          autocapitalize: "none",
          required: true,
        });
        return h(
          "div",
          { class: "question field", "data-kind": challenge.kind },
          rejectedNotice,
          picture,
          h("label", { for: id, text: challenge.prompt }),
          input,
          challenge.kind === "code" ? h("p", { class: "hint", text: "Enter the code you were sent." }) : null,
          h("p", { class: "field-error", id: errorId, hidden: true }),
        );
      }
      case "options":
      case "image_options":
      case "device_choice": {
        const pictures = challenge.kind === "image_options";
        const choices = challenge.options.map((option, optionIndex) => {
          const optionId = `${id}-option-${optionIndex}`;
          const image = pictures && option.image_data_uri && /^data:image\//.test(option.image_data_uri)
            ? h("img", { src: option.image_data_uri, alt: "" })
            : null;
          return h(
            "label",
            { class: "choice", for: optionId },
            h("input", {
              ...common,
              type: "radio",
              id: optionId,
              name: id,
              value: option.value,
              required: true,
            }),
            image,
            h("span", { text: option.label || option.value }),
          );
        });
        return h(
          "fieldset",
          { class: "question", "data-kind": challenge.kind, "aria-describedby": describedBy },
          h("legend", { text: challenge.prompt }),
          rejectedNotice,
          picture,
          h("div", { class: "choices" + (pictures ? " pictures" : "") }, choices),
          h("p", { class: "field-error", id: errorId, hidden: true }),
        );
      }
      case "push_approval":
        return h(
          "div",
          { class: "question", "data-kind": challenge.kind },
          h(
            "div",
            { class: "waiting-panel" },
            h("span", { class: "spinner", "aria-hidden": "true" }),
            h(
              "div",
              null,
              h("p", { text: challenge.prompt }),
              h("p", {
                class: "hint",
                text: `Open the ${providerName()} app or your bank's app on your phone and approve the request. This page moves on by itself once you have.`,
              }),
            ),
          ),
        );
      case "redirect": {
        const safe = typeof challenge.url === "string" && /^https?:\/\//i.test(challenge.url);
        const waitingNote = h("p", {
          class: "hint",
          id: id + "-waiting",
          text: "After you finish there, come back to this page: it moves on by itself.",
        });
        const link = safe
          ? h("a", {
              class: "button",
              href: challenge.url,
              target: "_blank",
              rel: "noopener noreferrer",
              id,
              "aria-describedby": id + "-waiting",
              text: `Continue at ${providerName()} (opens a new tab)`,
              onclick: () => {
                waitingNote.textContent = `Waiting for you to finish on ${providerName()}'s page…`;
                announce(`Waiting for you to finish on ${providerName()}'s page.`);
              },
            })
          : h("p", { class: "notice problem", text: "The provider did not say where to continue." });
        return h(
          "div",
          { class: "question", "data-kind": challenge.kind },
          h("p", { text: challenge.prompt }),
          link,
          waitingNote,
        );
      }
      default:
        return h(
          "div",
          { class: "question", "data-kind": challenge.kind },
          h("p", { text: challenge.prompt }),
          h("p", { class: "notice problem", text: "This page cannot show this kind of question yet." }),
        );
    }
  }

  function showChallenges(snapshot) {
    const challenges = snapshot.pending_challenges;
    const rejected = rejectedChallengeIds(snapshot);
    const needsAnswer = challenges.filter((challenge) => ANSWERED_KINDS.has(challenge.kind));
    const blocks = challenges.map((challenge, index) => challengeBlock(challenge, index, rejected.has(challenge.id)));
    const deadline = deadlineBlock(challenges);
    const formError = h("p", { class: "field-error", id: "mfa-error", role: "alert", hidden: true });
    let content;
    if (needsAnswer.length) {
      const form = h(
        "form",
        { novalidate: true, id: "mfa-form" },
        blocks,
        formError,
        h("div", { class: "actions" }, h("button", { type: "submit", text: "Continue" })),
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        submitAnswers(form, challenges);
      });
      content = form;
    } else {
      content = h("div", { id: "mfa-waiting" }, blocks);
    }
    const title = rejected.size
      ? "That answer was not accepted"
      : needsAnswer.length
        ? `${providerName()} has a question`
        : challenges.some((challenge) => challenge.kind === "redirect")
          ? `Continue at ${providerName()}`
          : "Approve on your device";
    show(title, "mfa:" + challenges.map((challenge) => challenge.id).join(","), deadline, content);
    startDeadline(challenges);
    if (rejected.size) {
      announce(`${providerName()} did not accept your answer. Try again.`);
    } else if (needsAnswer.length) {
      announce(
        needsAnswer.length === 1
          ? `${providerName()} asks a question.`
          : `${providerName()} asks ${needsAnswer.length} questions.`,
      );
    } else {
      announce(title + ".");
    }
    focusFirst(content);
  }

  function collectAnswers(form, challenges) {
    const answers = [];
    let firstProblem = null;
    for (const [index, challenge] of challenges.entries()) {
      if (!ANSWERED_KINDS.has(challenge.kind)) continue;
      const name = "answer-" + index;
      let value = "";
      let focusTarget;
      if (CHOICE_KINDS.has(challenge.kind)) {
        const checked = form.querySelector(`input[name="${name}"]:checked`);
        value = checked ? checked.value : "";
        focusTarget = form.querySelector(`input[name="${name}"]`);
        if (!value) {
          setChoiceError(form, index, "Choose one.");
        }
      } else {
        const input = form.elements.namedItem(name);
        value = input.value.trim();
        focusTarget = input;
        if (!value) setFieldError(input, "Enter your answer.");
      }
      if (!value) firstProblem = firstProblem || focusTarget;
      answers.push({ challenge_id: challenge.id, value });
    }
    return { answers, firstProblem };
  }

  function setChoiceError(form, index, message) {
    const error = document.getElementById(`answer-${index}-error`);
    error.textContent = message;
    error.hidden = false;
    for (const radio of form.querySelectorAll(`input[name="answer-${index}"]`)) radio.setAttribute("aria-invalid", message ? "true" : "false");
  }

  async function submitAnswers(form, challenges) {
    if (state.busy) return;
    clearErrors(form);
    if (Date.now() < state.retryUntil) {
      const wait = Math.ceil((state.retryUntil - Date.now()) / 1000);
      setFormError(form, `Too many tries. Wait ${wait} seconds, then try again.`);
      return;
    }
    const { answers, firstProblem } = collectAnswers(form, challenges);
    if (firstProblem) {
      firstProblem.focus();
      announce("Answer every question first.");
      return;
    }
    rememberAnswers(challenges.filter((challenge) => ANSWERED_KINDS.has(challenge.kind)));
    setBusy(form, true, `Checking your answer with ${providerName()}…`);
    const action = "mfa:" + challenges.map((challenge) => challenge.id).join(",");
    const key = keyFor(action);
    const result = await api("POST", linkPath("/mfa"), { answers }, key);
    noteOutcome(action, key, result);
    setBusy(form, false);
    if (result.ok && result.body && result.body.status) {
      accept(result.body);
      return;
    }
    forgetAnswers();
    if (problemFromError(result)) return;
    if (result.status === 429) state.retryUntil = Date.now() + 1000 * (result.retryAfter ?? 30);
    const message = refusalSentence(result, "That answer could not be sent. Try again.");
    if (result.status === 409) {
      // Answered elsewhere, or the link moved on: show where it stands, and say why.
      const shown = state.screenKey;
      await refresh();
      if (state.screenKey !== shown) {
        if (state.snapshot.status === "MFA_REQUIRED") {
          screenElement.prepend(h("p", { class: "notice problem", role: "alert", text: message }));
        }
        return;
      }
    }
    const concerned = concernedChallenge(result.error, answers, challenges);
    if (concerned >= 0 && ANSWERED_KINDS.has(challenges[concerned].kind)) {
      if (CHOICE_KINDS.has(challenges[concerned].kind)) {
        setChoiceError(form, concerned, message);
        form.querySelector(`input[name="answer-${concerned}"]`).focus();
      } else {
        const input = form.elements.namedItem("answer-" + concerned);
        setFieldError(input, message);
        input.focus();
      }
    } else {
      setFormError(form, message);
      const first = form.querySelector("input");
      if (first) first.focus();
    }
    announce(message);
  }

  /**
   * Which question an API refusal is about, so it can be shown in that question's place: one
   * that names an answer by its place (`body.answers.0.value: ...`) or a challenge by its id
   * (`challenge 'CRD-…'`, ids cut short); -1 for a refusal of the whole submission.
   */
  function concernedChallenge(error, answers, challenges) {
    const detail = (error && error.detail) || "";
    const byPlace = /answers\.(\d+)\b/.exec(detail);
    if (byPlace && answers[Number(byPlace[1])]) {
      const id = answers[Number(byPlace[1])].challenge_id;
      return challenges.findIndex((challenge) => challenge.id === id);
    }
    const byId = /challenge '([^']+)'/i.exec(detail.split("pending:")[0]);
    if (byId) {
      const shown = byId[1].replace(/…$/, "");
      return challenges.findIndex((challenge) => challenge.id.startsWith(shown));
    }
    return -1;
  }

  // ---------------------------------------------------------------- deadline

  function earliestDeadline(challenges) {
    const times = challenges.map((challenge) => Date.parse(challenge.deadline)).filter(Number.isFinite);
    return times.length ? Math.min(...times) : null;
  }

  function deadlineBlock(challenges) {
    const deadline = earliestDeadline(challenges);
    if (deadline === null) return null;
    return h(
      "p",
      { class: "deadline", id: "deadline" },
      h("span", { text: "Time left to answer" }),
      h("time", { id: "deadline-left", datetime: new Date(deadline).toISOString() }, formatLeft(deadline - Date.now())),
    );
  }

  function formatLeft(ms) {
    const seconds = Math.max(0, Math.ceil(ms / 1000));
    const minutes = Math.floor(seconds / 60);
    return `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
  }

  function startDeadline(challenges) {
    const deadline = earliestDeadline(challenges);
    if (deadline === null) return;
    state.announcedMinute = deadline - Date.now() <= 60000;
    const tick = () => {
      const block = document.getElementById("deadline");
      const left = document.getElementById("deadline-left");
      if (!block || !left) return;
      const remaining = deadline - Date.now();
      left.textContent = formatLeft(remaining);
      block.classList.toggle("soon", remaining > 0 && remaining <= 60000);
      block.classList.toggle("over", remaining <= 0);
      if (remaining <= 60000 && remaining > 0 && !state.announcedMinute) {
        state.announcedMinute = true;
        announce("Less than a minute left to answer.");
      }
      if (remaining <= 0) {
        block.firstChild.textContent = "Time is up";
        window.clearInterval(state.deadlineTimer);
        state.deadlineTimer = null;
        announce(`Time is up. Waiting for ${providerName()} to respond.`);
      }
    };
    tick();
    state.deadlineTimer = window.setInterval(tick, 1000);
  }

  // ---------------------------------------------------------------- rests and ends

  function showWorking(snapshot) {
    show(
      `Connecting to ${providerName()}`,
      "working",
      h(
        "div",
        { class: "waiting-panel" },
        h("span", { class: "spinner", "aria-hidden": "true" }),
        h("p", { text: (snapshot && snapshot.message) || `${providerName()} is checking your details. This can take a moment.` }),
      ),
    );
    announce(`Connecting to ${providerName()}…`);
    titleElement.focus();
  }

  function accountRow(account) {
    const money = account.balance
      ? `${account.balance}${account.currency ? " " + account.currency : ""}`
      : "";
    return h(
      "li",
      null,
      h(
        "span",
        null,
        h("span", { text: account.name + (account.mask ? ` ••${account.mask}` : "") }),
        h("br"),
        h("span", { class: "kind", text: account.kind }),
      ),
      h("span", { class: "balance", text: money }),
    );
  }

  function showSuccess(snapshot) {
    forgetAnswers();
    const accounts = snapshot.accounts || [];
    show(
      `${providerName()} is connected`,
      "connected",
      h(
        "div",
        { class: "outcome success" },
        h("span", { class: "mark", "aria-hidden": "true", text: "✓" }),
        h("p", { text: `Your ${providerName()} account is linked. You can close this page and go back to the app.` }),
      ),
      accounts.length
        ? [
            h("h2", { text: accounts.length === 1 ? "1 account" : `${accounts.length} accounts` }),
            h("ul", { class: "accounts" }, accounts.map(accountRow)),
          ]
        : null,
    );
    announce(`Connected. Your ${providerName()} account is linked.`);
    titleElement.focus();
  }

  const FAILURE_ADVICE = {
    INVALID_CREDENTIALS: "Check your username and password, then start again from the app.",
    MFA_TIMEOUT: "The time to answer ran out. Start again from the app.",
    MFA_FAILED: "Too many answers were not accepted. Start again from the app.",
    UNSUPPORTED_MFA: "This provider asks for a kind of check linkflow cannot pass on yet.",
    USER_REVOKED_ACCESS: "Access was withdrawn at the provider. Start again from the app to reconnect.",
    INSTITUTION_UNAVAILABLE: "This institution can no longer be connected.",
  };

  function showFailure(snapshot) {
    forgetAnswers();
    const ended = snapshot.status === "UNLINKED";
    show(
      ended ? "This account was disconnected" : `We could not connect ${providerName()}`,
      "ended:" + snapshot.status + ":" + (snapshot.reason || ""),
      h(
        "div",
        { class: "outcome failure" },
        h("span", { class: "mark", "aria-hidden": "true", text: "✕" }),
        h("p", { text: snapshot.message || (ended ? "The link to this account was removed." : "The connection failed.") }),
      ),
      !ended && FAILURE_ADVICE[snapshot.reason] ? h("p", { class: "lead", text: FAILURE_ADVICE[snapshot.reason] }) : null,
    );
    announce(ended ? "This account was disconnected." : `Failed. We could not connect ${providerName()}.`);
    titleElement.focus();
  }

  function allows(action) {
    const actions = state.session && state.session.actions;
    return Array.isArray(actions) ? actions.includes(action) : true;
  }

  function actionButton(label, path, busyMessage) {
    const error = h("p", { class: "field-error", role: "alert", hidden: true });
    const button = h("button", { type: "button", text: label });
    button.addEventListener("click", async () => {
      if (state.busy) return;
      error.hidden = true;
      state.busy = true;
      button.disabled = true;
      announce(busyMessage);
      const key = keyFor(path);
      const result = await api("POST", linkPath(path), undefined, key);
      noteOutcome(path, key, result);
      state.busy = false;
      button.disabled = false;
      if (result.ok && result.body && result.body.status) {
        forgetAnswers();
        accept(result.body);
        follow();
        return;
      }
      if (problemFromError(result)) return;
      error.textContent = sentenceFor(result, "That did not work. Try again in a moment.");
      error.hidden = false;
      announce(error.textContent);
      button.focus();
    });
    return [h("div", { class: "actions" }, button), error];
  }

  function showActionRequired(snapshot) {
    const reason = snapshot.reason;
    const message = snapshot.message || "";
    if (reason === "REAUTH_REQUIRED" && allows("credentials")) {
      showLogin("update_credentials");
      return;
    }
    let title;
    let body;
    if (reason === "MFA_REFRESH_REQUIRED" && allows("reauthenticate")) {
      title = `${providerName()} needs to check it's you`;
      body = [
        h("p", { class: "lead", text: message || `Log in to ${providerName()} again to keep your account linked.` }),
        actionButton("Verify it's me", "/reauthenticate", `Logging in to ${providerName()} again…`),
      ];
    } else if (reason === "PROVIDER_HOLD" && allows("resolve_hold")) {
      title = `${providerName()} needs something from you`;
      body = [
        h("p", { class: "notice waiting", text: message || `${providerName()} has put this connection on hold.` }),
        h("p", { class: "lead", text: "Do what it asks, then come back and check again." }),
        actionButton("I've done it, check again", "/resolve-hold", `Checking with ${providerName()}…`),
      ];
    } else if (reason === "INSTITUTION_UNAVAILABLE") {
      title = `${providerName()} is not answering`;
      body = h("p", { class: "lead", text: message || "Your account stays linked; we keep trying and will catch up by ourselves." });
    } else {
      title = `${providerName()} needs your attention`;
      body = [
        h("p", { class: "notice waiting", text: message || "Something at the provider needs your attention." }),
        h("p", { class: "lead", text: "Once you have dealt with it, go back to the app you came from." }),
      ];
    }
    show(title, "action:" + reason, body);
    announce(title);
    focusFirst(screenElement);
  }

  // ---------------------------------------------------------------- following the link

  function screenKeyFor(snapshot) {
    switch (snapshot.status) {
      case "MFA_REQUIRED":
        return "mfa:" + snapshot.pending_challenges.map((challenge) => challenge.id).join(",");
      case "CONNECTING":
        return "working";
      case "CONNECTED":
        return "connected";
      case "ACTION_REQUIRED":
        return snapshot.reason === "REAUTH_REQUIRED" && allows("credentials")
          ? "login:update_credentials"
          : "action:" + snapshot.reason;
      default:
        return mayLogInAgain(snapshot) ? "login:start-again" : "ended:" + snapshot.status + ":" + (snapshot.reason || "");
    }
  }

  /** Whether the page has nothing left to follow: the link is linked, or has ended. */
  function settled() {
    const snapshot = state.snapshot;
    return Boolean(snapshot) && (ENDED.has(snapshot.status) || snapshot.status === "CONNECTED");
  }

  /**
   * Show a snapshot, unless it is older than the one shown, or would redraw the screen already
   * shown (which would wipe what the user is typing), unless `force`d or a new login was refused.
   */
  function accept(snapshot, options) {
    const force = Boolean(options && options.force);
    const previous = state.snapshot;
    if (previous && Date.parse(snapshot.updated_at) < Date.parse(previous.updated_at)) return;
    state.snapshot = snapshot;
    const key = screenKeyFor(snapshot);
    let redraw = force;
    if (state.awaitingCredentials && snapshot.status !== "CONNECTING") {
      state.awaitingCredentials = false;
      state.loginRefused = snapshot.status === "ACTION_REQUIRED" && snapshot.reason === "REAUTH_REQUIRED";
      redraw = redraw || state.loginRefused;
    }
    if (key === state.screenKey && !redraw) return;
    render(snapshot);
    if (settled()) stopFollowing();
  }

  function render(snapshot) {
    switch (snapshot.status) {
      case "MFA_REQUIRED":
        if (snapshot.pending_challenges.length) showChallenges(snapshot);
        else showWorking(snapshot);
        break;
      case "CONNECTING":
        showWorking(snapshot);
        break;
      case "CONNECTED":
        showSuccess(snapshot);
        break;
      case "ACTION_REQUIRED":
        showActionRequired(snapshot);
        break;
      default:
        if (mayLogInAgain(snapshot)) showLogin("start-again");
        else showFailure(snapshot);
    }
  }

  /** A new link whose login the provider refused: this page may send the login again. */
  function mayLogInAgain(snapshot) {
    return snapshot.status === "FAILED" && snapshot.reason === "INVALID_CREDENTIALS" && state.session.mode === "create" && allows("start");
  }

  async function refresh() {
    const result = await api("GET", linkPath(""));
    if (result.ok && result.body && result.body.status) accept(result.body);
    return result;
  }

  function stopFollowing() {
    state.following = false;
    connectionElement.hidden = true;
    if (state.streamAbort) state.streamAbort.abort();
    state.streamAbort = null;
  }

  /** Read the link's event stream; reconnect after a drop, with a growing pause. */
  async function follow() {
    if (state.following || settled()) return;
    state.following = true;
    let failures = 0;
    while (state.following && !settled()) {
      const controller = new AbortController();
      state.streamAbort = controller;
      let response = null;
      try {
        response = await fetch(apiUrl(linkPath("/events")), {
          headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
          cache: "no-store",
          credentials: "omit",
          referrerPolicy: "no-referrer",
          signal: controller.signal,
        });
      } catch (networkError) {
        response = null;
      }
      if (!state.following) return;
      if (response && (response.status === 401 || response.status === 403)) {
        let error = null;
        try {
          error = (await response.json()).error;
        } catch (notJson) {
          error = null;
        }
        problemFromError({ status: response.status, error });
        return;
      }
      if (response && response.ok && response.body) {
        if (!connectionElement.hidden) announce("Back in touch.");
        connectionElement.hidden = true;
        failures = 0;
        try {
          await readEvents(response.body);
        } catch (streamBroken) {
          // The stream dropped (a restart, a network change): reconnect below.
        }
      }
      if (!state.following || settled()) return;
      failures += 1;
      if (failures === 2) {
        connectionElement.hidden = false;
        announce("Reconnecting…");
      }
      await sleep(RECONNECT_DELAYS_MS[Math.min(failures - 1, RECONNECT_DELAYS_MS.length - 1)]);
    }
  }

  async function readEvents(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    while (state.following) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let boundary;
      while ((boundary = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        handleEvent(block);
      }
    }
    reader.cancel().catch(() => {});
  }

  function handleEvent(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    let payload;
    try {
      payload = JSON.parse(data.join("\n"));
    } catch (notJson) {
      return;
    }
    if (payload && payload.error) {
      if (type === "expired" || payload.error.code === "link_token_expired") {
        problemFromError({ status: 401, error: payload.error });
      } else {
        announce(`Waiting for ${providerName()}… ${payload.error.message || ""}`.trim());
      }
      return;
    }
    if (payload && payload.status && payload.link_id) accept(payload);
  }

  // ---------------------------------------------------------------- start

  async function loadSession() {
    const result = await api("GET", "connect/session");
    if (result.ok && result.body && result.body.link_id) return { session: result.body };
    return { problem: result };
  }

  async function boot() {
    if (!token) {
      showProblem(
        "This link is incomplete",
        "The address you opened has no connection token in it.",
        "Go back to the app you came from and open its link again.",
      );
      return;
    }
    const { session, problem } = await loadSession();
    if (!session) {
      if (problemFromError(problem)) return;
      showProblem(
        "We could not open this connection",
        sentenceFor(problem, "The connection service did not recognise this link."),
        "Reload this page to try again, or go back to the app you came from.",
      );
      return;
    }
    state.session = session;
    providerElement.textContent = providerName();
    providerElement.hidden = false;
    const current = await api("GET", linkPath(""));
    if (current.ok && current.body && current.body.status) {
      accept(current.body, { force: true });
      follow();
      return;
    }
    if (problemFromError(current)) return;
    if (current.status === 404 && allows("start")) {
      showLogin("start");
      return;
    }
    showProblem(
      "We could not open this connection",
      sentenceFor(current, "This link could not be read."),
      "Reload this page to try again, or go back to the app you came from.",
    );
  }

  window.addEventListener("hashchange", () => window.location.reload());
  boot();
})();
