/// The status page served at `GET /`: one self-contained HTML document (no external assets, no
/// build step). Its script reads this node's `/cluster` for the members (voters, learners, and
/// the voters leaving in a joint change), then polls every member's `/cluster` once a second
/// and shows each node's part in the membership, its role, term, commit and applied index, and
/// which one leads; a node that does not answer shows as down. (Browsers allow the
/// cross-origin reads because every node answers `GET /cluster` with
/// `Access-Control-Allow-Origin: *`.)
enum StatusPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>KVStore cluster</title>
    <style>
      body { font: 15px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
      table { border-collapse: collapse; }
      th, td { padding: .35em .9em; border-bottom: 1px solid #ddd; text-align: left; }
      td.num { text-align: right; font-variant-numeric: tabular-nums; }
      tr.leader td { background: #eef8ee; font-weight: 600; }
      tr.down td { color: #a33; }
      #summary { margin: 1em 0; }
    </style>
    </head>
    <body>
    <h1>KVStore cluster</h1>
    <div id="summary">loading…</div>
    <table>
      <thead><tr><th>node</th><th>member</th><th>HTTP</th><th>state</th><th>term</th><th>commit</th><th>applied</th><th>snapshot</th></tr></thead>
      <tbody id="nodes"></tbody>
    </table>
    <script>
    "use strict";
    let members = [];

    async function fetchJSON(url) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 900);
      try {
        const response = await fetch(url, { signal: controller.signal, cache: "no-store" });
        if (!response.ok) throw new Error("HTTP " + response.status);
        return await response.json();
      } finally {
        clearTimeout(timer);
      }
    }

    function cell(row, text, numeric) {
      const td = document.createElement("td");
      td.textContent = text;
      if (numeric) td.className = "num";
      row.appendChild(td);
    }

    async function refresh() {
      try {
        const here = await fetchJSON("/cluster");
        members = here.members;
      } catch (e) {
        // This node is down: keep polling the members seen before.
      }
      const views = await Promise.all(members.map(async (m) => {
        if (!m.http) return { member: m, status: null };
        try {
          return { member: m, status: await fetchJSON("http://" + m.http + "/cluster") };
        } catch (e) {
          return { member: m, status: null };
        }
      }));
      const body = document.getElementById("nodes");
      body.textContent = "";
      const leaders = [];
      for (const { member, status } of views) {
        const row = document.createElement("tr");
        row.dataset.node = member.id;
        cell(row, member.id);
        cell(row, member.role === "leavingVoter" ? "voter (leaving)" : member.role);
        cell(row, member.http || "?");
        if (status) {
          row.dataset.role = status.role;
          if (status.role === "leader") { row.className = "leader"; leaders.push(member.id); }
          cell(row, status.role);
          cell(row, status.term, true);
          cell(row, status.commit, true);
          cell(row, status.applied, true);
          cell(row, status.snapshot, true);
        } else {
          row.dataset.role = "down";
          row.className = "down";
          cell(row, "down");
          for (let i = 0; i < 4; i++) cell(row, "–", true);
        }
        row.dataset.member = member.role;
        body.appendChild(row);
      }
      const up = views.filter((v) => v.status).length;
      const learners = views.filter((v) => v.member.role === "learner").length;
      document.getElementById("summary").textContent =
        `${views.length} nodes, ${up} up` + (learners ? `, ${learners} learning` : "") +
        `; leader: ${leaders.length ? leaders.join(", ") : "none"}`;
    }

    refresh();
    setInterval(refresh, 1000);
    </script>
    </body>
    </html>
    """#
}
