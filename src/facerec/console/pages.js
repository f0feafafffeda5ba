// Gallery pages: collections, persons (search, pages, rename, erase), enroll, models.

import { api } from "./api.js";
import { reason, t } from "./i18n.js";
import {
  bytes,
  confirmDialog,
  dropZone,
  errorMessage,
  errorText,
  h,
  message,
  qualityFactors,
  table,
} from "./ui.js";

function yesNo(value) {
  return value ? t("common.yes") : t("common.no");
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export async function collectionsPage(view, app) {
  const status = h("div", { class: "status" });
  const list = h("div", {}, t("common.loading"));
  const name = h("input", { name: "name", required: true, maxlength: 64 });
  const description = h("input", { name: "description", maxlength: 1000 });
  const form = h(
    "form",
    { class: "inline" },
    h("label", {}, t("common.name"), name),
    h("label", {}, t("common.description"), description),
    h("button", { type: "submit" }, t("collections.create")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    try {
      await api.createCollection(name.value.trim(), description.value.trim());
      status.append(message("ok", t("collections.created", { name: name.value.trim() })));
      form.reset();
      await refresh();
      await app.loadCollections();
    } catch (error) {
      status.append(errorMessage(error));
    }
  });
  async function refresh() {
    try {
      const { collections } = await api.collections();
      const rows = collections.map((c) =>
        h(
          "tr",
          {},
          h("td", {}, c.name),
          h("td", {}, c.description),
          h("td", { class: "number" }, c.person_count),
          h("td", {}, when(c.created_at)),
          h(
            "td",
            {},
            h("button", { type: "button", onclick: () => app.useCollection(c.name) }, t("collections.use")),
          ),
        ),
      );
      list.replaceChildren(
        table(
          [t("common.name"), t("common.description"), t("collections.persons"), t("common.created"), ""],
          rows,
          { id: "collections-table" },
        ),
      );
    } catch (error) {
      list.replaceChildren(errorMessage(error));
    }
  }
  view.replaceChildren(h("h2", {}, t("collections.title")), form, status, list);
  await refresh();
}

export async function personsPage(view, app) {
  const status = h("div", { class: "status" });
  const list = h("div", {});
  const search = h("input", { type: "search", name: "name", placeholder: t("persons.search") });
  const cursors = [];
  let cursor = null;
  let nextCursor = null;
  const next = h("button", { type: "button", class: "next-page", disabled: true }, t("persons.next"));
  const first = h("button", { type: "button", class: "first-page", disabled: true }, t("persons.first"));
  next.addEventListener("click", () => {
    cursors.push(cursor);
    cursor = nextCursor;
    load();
  });
  first.addEventListener("click", () => {
    cursors.length = 0;
    cursor = null;
    load();
  });
  const form = h(
    "form",
    { class: "inline", role: "search" },
    search,
    h("button", { type: "submit" }, t("persons.search_button")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors.length = 0;
    cursor = null;
    load();
  });

  function row(person) {
    const name = h("span", { class: "person-name" }, person.person_name);
    const cell = h("td", {}, name);
    const rename = h("button", { type: "button", class: "rename" }, t("persons.rename"));
    const erase = h("button", { type: "button", class: "erase danger" }, t("persons.erase"));
    rename.addEventListener("click", () => {
      const input = h("input", { value: person.person_name, maxlength: 200, class: "rename-input" });
      const save = h("button", { type: "submit" }, t("common.save"));
      const cancel = h("button", { type: "button", onclick: () => cell.replaceChildren(name) }, t("common.cancel"));
      const edit = h("form", { class: "inline" }, input, save, cancel);
      edit.addEventListener("submit", async (event) => {
        event.preventDefault();
        status.replaceChildren();
        try {
          const { person: updated } = await api.renamePerson(person.person_id, input.value.trim());
          person.person_name = updated.person_name;
          name.textContent = updated.person_name;
          cell.replaceChildren(name);
          status.append(message("ok", t("persons.renamed", { name: updated.person_name })));
        } catch (error) {
          status.append(errorMessage(error));
        }
      });
      cell.replaceChildren(edit);
      input.focus();
    });
    erase.addEventListener("click", async () => {
      const text = t("persons.erase_confirm", { name: person.person_name, id: person.person_id });
      if (!(await confirmDialog(text))) return;
      status.replaceChildren();
      try {
        await api.erasePerson(person.person_id);
        status.append(message("ok", t("persons.erased", { name: person.person_name })));
        await load();
      } catch (error) {
        status.append(errorMessage(error));
      }
    });
    return h(
      "tr",
      { dataset: { personId: person.person_id } },
      cell,
      h("td", { class: "mono" }, person.person_id),
      h("td", { class: "number" }, person.face_count),
      h("td", {}, person.collection),
      h("td", {}, when(person.created_at)),
      h("td", { class: "actions" }, rename, erase),
    );
  }

  async function load() {
    list.replaceChildren(t("common.loading"));
    try {
      const page = await api.persons({
        name: search.value.trim(),
        collection: app.collection(),
        cursor,
        limit: 20,
      });
      nextCursor = page.next_cursor;
      next.disabled = !nextCursor;
      first.disabled = cursor === null;
      list.replaceChildren(
        page.persons.length
          ? table(
              [t("common.name"), t("persons.id"), t("persons.faces"), t("app.collection"), t("common.created"), t("common.actions")],
              page.persons.map(row),
              { id: "persons-table" },
            )
          : message("empty", t("common.none")),
      );
    } catch (error) {
      list.replaceChildren(errorMessage(error));
    }
  }

  view.replaceChildren(
    h("h2", {}, t("persons.title")),
    form,
    h("p", { class: "hint" }, t("persons.no_thumbnails")),
    status,
    list,
    h("div", { class: "pager" }, first, next),
  );
  await load();
}

export function enrollPage(view, app) {
  const status = h("div", { class: "status" });
  const results = h("ul", { class: "results", id: "enroll-results" });
  const personName = h("input", { name: "person_name", maxlength: 200, required: true });
  const personId = h("input", { name: "person_id", maxlength: 128 });
  let files = [];
  const zone = dropZone({
    multiple: true,
    onFiles: (chosen) => {
      files = chosen;
      zone.querySelector("span").textContent = chosen.map((file) => file.name).join(", ");
    },
  });
  const submit = h("button", { type: "submit", class: "primary" }, t("enroll.submit"));
  const form = h(
    "form",
    { class: "stack", id: "enroll-form" },
    h("label", {}, t("enroll.person_name"), personName),
    h("label", {}, t("enroll.person_id"), personId),
    zone,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    results.replaceChildren();
    const name = personName.value.trim();
    if (!name) return status.append(message("error", t("enroll.need_name")));
    if (!files.length) return status.append(message("error", t("enroll.need_files")));
    submit.disabled = true;
    let id = personId.value.trim() || null;
    for (const file of files) {
      const item = h("li", { class: "pending" }, `${file.name}: ${t("common.loading")}`);
      results.append(item);
      try {
        const answer = await api.addFace({
          file,
          person_name: name,
          person_id: id,
          collection: app.collection(),
        });
        id = answer.person_id;
        item.className = "accepted";
        item.replaceChildren(
          h("strong", {}, `✓ ${file.name}: ${t("enroll.accepted")}`),
          ` — ${answer.person_name} (${answer.person_id}), ${t("enroll.quality")} ${Math.round(answer.face_quality)}`,
          h("div", { class: "factors" }, qualityFactors(answer.face?.quality)),
          ...answer.warnings.map((w) => h("div", { class: "warning" }, `⚠ ${reason(w.code)}: ${w.message}`)),
        );
      } catch (error) {
        const details = error.details || {};
        const why = (details.reasons || []).map(reason).join(", ");
        const score =
          details.quality_score === undefined
            ? ""
            : `${t("enroll.quality")} ${Math.round(details.quality_score)}`;
        item.className = "rejected";
        item.dataset.reason = error.code;
        item.replaceChildren(
          h("strong", {}, `✗ ${file.name}: ${t("enroll.rejected")}`),
          ` — ${errorText(error)}`,
          why || score ? h("div", { class: "factors" }, [why, score].filter(Boolean).join(" · ")) : null,
        );
        if (error.code === "low_quality") item.append(await detectedFactors(file));
      }
    }
    submit.disabled = false;
  });
  view.replaceChildren(
    h("h2", {}, t("enroll.title")),
    h("p", { class: "hint" }, t("enroll.help")),
    form,
    status,
    results,
  );
}

// The quality factors of a rejected photo's most confident face (the rejection names only the
// reasons): one detection call, no quality bar.
async function detectedFactors(file) {
  try {
    const answer = await api.detect({ file, min_quality_threshold: 0, max_faces: 5 });
    const best = [...answer.faces].sort((a, b) => b.confidence - a.confidence)[0];
    return best ? h("div", { class: "factors" }, qualityFactors(best.quality)) : "";
  } catch {
    return "";  // a key without the detect scope: the reasons above must do
  }
}

export async function modelsPage(view) {
  view.replaceChildren(h("h2", {}, t("models.title")), t("common.loading"));
  try {
    const answer = await api.models();
    const rows = answer.models.map((m) =>
      h(
        "tr",
        { class: m.installed ? "" : "muted" },
        h("td", { class: "mono" }, m.name),
        h("td", {}, m.task),
        h("td", {}, m.family),
        h("td", { title: m.not_installed_reason || "" }, yesNo(m.installed)),
        h("td", {}, yesNo(m.loaded)),
        h("td", { class: "number" }, bytes(m.memory_bytes)),
        h("td", {}, m.execution_provider),
        h("td", {}, m.license_url ? h("a", { href: m.license_url, rel: "noreferrer", target: "_blank" }, m.license) : m.license),
        h("td", {}, yesNo(m.commercial_use)),
      ),
    );
    view.replaceChildren(
      h("h2", {}, t("models.title")),
      h(
        "p",
        {},
        t("models.budget", {
          kind: answer.memory_kind,
          loaded: bytes(answer.memory_loaded_bytes),
          budget: bytes(answer.memory_budget_bytes),
          providers: answer.providers.join(", "),
        }),
      ),
      table(
        [t("common.name"), t("models.task"), t("models.family"), t("models.installed"), t("models.loaded"), t("models.memory"), t("models.provider"), t("models.license"), t("models.commercial")],
        rows,
        { id: "models-table" },
      ),
    );
  } catch (error) {
    view.replaceChildren(h("h2", {}, t("models.title")), errorMessage(error));
  }
}
