// The question board, live: Server-Sent Events bring every change (a question, a vote, a pin, an answer), and
// votes are sent without reloading. Without this script the board is plain pages and forms.
(function () {
  "use strict";
  var root = document.querySelector("[data-board]");
  if (!root || !window.EventSource || !window.fetch) return;
  var view = root.dataset.view; // "board", "moderate" or "presenter"
  var template = root.querySelector("template[data-item]");
  var status = root.querySelector("[data-board-status]");
  var ids = function (text) { return new Set((text || "").split(" ").filter(Boolean).map(Number)); };
  var own = ids(root.dataset.own);
  var voted = ids(root.dataset.voted);
  var questions = new Map(); // id -> {id, body, name, votes, state, pinned, created, merged_into}
  // The words this script writes, in the page's language (data-words, from the server's catalogs).
  var words = JSON.parse(root.dataset.words || "{}");
  var word = function (key) { return words[key] || key; };

  // Questions already on the page, so a vote before the first message counts right.
  root.querySelectorAll('[data-list]:not([data-list="own"]) > li.question[data-state]').forEach(function (li) {
    var id = Number(li.dataset.id);
    questions.set(id, { id: id, votes: Number(li.dataset.votes), state: li.dataset.state, pinned: li.dataset.pinned === "1",
                        created: li.dataset.created, body: text(li, ".q-body"), name: text(li, ".q-name") });
  });

  function text(li, selector) {
    var el = li.querySelector(selector);
    return el ? el.textContent : "";
  }

  function flags(q) {
    return new Set([q.state, q.pinned ? "pinned" : "unpinned", own.has(q.id) ? "own" : "others",
                    voted.has(q.id) ? "voted" : "unvoted"]);
  }

  // data-show="a b+c": shown when the question is a, or both b and c (server-side: board_shows()).
  function shows(expr, f) {
    return expr.split(" ").some(function (option) {
      return option.split("+").every(function (term) { return f.has(term); });
    });
  }

  function byVotes(a, b) {
    return (b.votes - a.votes) || (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id - b.id);
  }

  function listOf(q) {
    if (q.state === "merged" || q.state === "hidden") return "hidden";
    if (q.state === "pending") return "pending";
    if (q.state === "answered") return "answered";
    return q.pinned ? "pinned" : "open";
  }

  function item(q) {
    var li = document.getElementById("q" + q.id);
    if (!li) {
      li = template.content.firstElementChild.cloneNode(true);
      li.id = "q" + q.id;
      li.dataset.id = q.id;
      li.querySelectorAll("form").forEach(function (form) {
        form.action = form.getAttribute("action").replace("/questions/0/", "/questions/" + q.id + "/");
      });
      li.querySelectorAll(".visually-hidden").forEach(function (el) {
        el.textContent = el.textContent.replace(/ 0$/, " " + q.id);
      });
      var number = li.querySelector(".q-number");
      if (number) number.textContent = "#" + q.id;
    }
    li.querySelector(".q-body").textContent = q.body;
    li.querySelector(".q-name").textContent = q.name;
    li.querySelector("[data-votes-count]").textContent = q.votes;
    li.querySelector("[data-votes-word]").textContent = word(q.votes === 1 ? "vote" : "votes");
    li.dataset.state = q.state;
    li.dataset.pinned = q.pinned ? "1" : "0";
    li.dataset.votes = q.votes;
    var merged = li.querySelector(".q-badge-merged");
    if (merged) merged.textContent = q.merged_into ? word("merged_into").replace("{id}", q.merged_into) : word("merged");
    var f = flags(q);
    li.querySelectorAll("[data-show]").forEach(function (el) { el.hidden = !shows(el.dataset.show, f); });
    return li;
  }

  function fill(name, list) {
    var ol = root.querySelector('[data-list="' + name + '"]');
    if (!ol) return;
    var wanted = list.map(item);
    // Move only what is out of place: a focused button keeps its focus.
    wanted.forEach(function (li, n) {
      if (ol.children[n] !== li) ol.insertBefore(li, ol.children[n] || null);
    });
    while (ol.children.length > wanted.length) ol.removeChild(ol.lastElementChild);
    var empty = root.querySelector('[data-empty="' + name + '"]');
    if (empty) empty.hidden = wanted.length > 0;
  }

  function render() {
    var lists = { pinned: [], open: [], answered: [], pending: [], hidden: [] };
    questions.forEach(function (q) { lists[listOf(q)].push(q); });
    Object.keys(lists).forEach(function (name) { lists[name].sort(byVotes); });
    if (view === "presenter") {
      fill("pinned", lists.pinned.slice(0, 1));
      fill("next", lists.open.slice(0, 5));
      return;
    }
    Object.keys(lists).forEach(function (name) { fill(name, lists[name]); });
    // A registrant's own question that has come onto the board leaves "not on the board".
    var mine = root.querySelector('[data-list="own"]');
    if (mine) {
      Array.prototype.slice.call(mine.children).forEach(function (li) {
        var q = questions.get(Number(li.dataset.id));
        if (q && q.body !== undefined) mine.removeChild(li);
      });
    }
  }

  function take(list, replace) {
    if (replace) questions = new Map();
    list.forEach(function (q) {
      // Without its text the question is not on the board for this reader (pending, hidden, merged).
      if (q.body === undefined) questions.delete(q.id);
      else questions.set(q.id, q);
    });
    render();
  }

  var source = new EventSource(root.dataset.live);
  source.addEventListener("snapshot", function (e) {
    take(JSON.parse(e.data).questions, true);
    root.dataset.connected = "1"; // the board is live from here on (tests wait for it)
  });
  source.addEventListener("change", function (e) { take(JSON.parse(e.data).questions, false); });

  function say(message) {
    if (status) status.textContent = message;
  }

  // Votes without a reload: the same form, sent by fetch; the answer is the count and whether the vote is on.
  root.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.hasAttribute("data-vote")) return;
    e.preventDefault();
    var data = new FormData(form);
    if (e.submitter && e.submitter.name) data.set(e.submitter.name, e.submitter.value);
    fetch(form.action, { method: "POST", body: data, credentials: "same-origin",
                         headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (!result.ok) {
          say(result.body.error ? result.body.error.message : word("failed"));
          return;
        }
        var answer = result.body;
        if (answer.voted) voted.add(answer.id); else voted.delete(answer.id);
        var q = questions.get(answer.id);
        if (q) q.votes = answer.votes;
        render();
        // The button pressed is hidden now: the keyboard stays on the question, on its other vote button.
        var li = document.getElementById("q" + answer.id);
        var again = li && li.querySelector("[data-vote] button:not([hidden])");
        if (again && e.submitter && e.submitter.hidden) again.focus();
        say(answer.voted ? word("counted") : word("taken_back"));
      })
      .catch(function () { say(word("offline")); });
  });
})();
