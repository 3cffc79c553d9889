"use strict";
// The class overview's list of students: sort by a column, filter by status, section, final
// grade, late and needs review. It moves and hides the rows the page already has and writes
// only numbers and fixed words: no student text is ever parsed as markup. The page's
// Content-Security-Policy allows this script alone, by its hash.
(function () {
  var table = document.getElementById("student-table");
  var controls = document.getElementById("student-filters");
  if (!table || !controls) {
    return;
  }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var field = function (id) { return document.getElementById(id); };
  var status = field("filter-status");
  var section = field("filter-section");
  var low = field("filter-low");
  var high = field("filter-high");
  var late = field("filter-late");
  var review = field("filter-review");
  var count = field("filter-count");

  function bound(input) {
    var value = input && input.value.trim() !== "" ? Number(input.value) : NaN;
    return isNaN(value) ? null : value;
  }

  function keeps(row, from, to) {
    var data = row.dataset;
    var grade = data.final === "" ? null : Number(data.final);
    return (!status.value || data.status === status.value) &&
      (!section || !section.value || data.section === section.value) &&
      (!late.checked || data.late === "1") &&
      (!review.checked || data.review === "1") &&
      (from === null || (grade !== null && grade >= from)) &&
      (to === null || (grade !== null && grade <= to));
  }

  function filter() {
    var from = bound(low);
    var to = bound(high);
    var shown = 0;
    rows.forEach(function (row) {
      row.hidden = !keeps(row, from, to);
      shown += row.hidden ? 0 : 1;
    });
    count.textContent = shown + " of " + rows.length + " shown";
  }

  function key(cell, numeric) {
    var text = cell.hasAttribute("data-value") ? cell.getAttribute("data-value")
      : cell.textContent.trim().toLowerCase();
    if (!numeric) {
      return text;
    }
    return text === "" || isNaN(Number(text)) ? null : Number(text);
  }

  function sortBy(column, button) {
    var header = headers[column];
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var numeric = header.getAttribute("data-type") === "number";
    var order = ascending ? 1 : -1;
    headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var keyed = rows.map(function (row, index) {
      return { key: key(row.cells[column], numeric), index: index, row: row };
    });
    keyed.sort(function (a, b) {
      if (a.key === b.key) {
        return a.index - b.index;
      }
      if (a.key === null || b.key === null) {  // no grade: last, either way
        return a.key === null ? 1 : -1;
      }
      return (a.key < b.key ? -1 : 1) * order;
    });
    keyed.forEach(function (item) { body.appendChild(item.row); });
    rows = keyed.map(function (item) { return item.row; });
    button.focus();
  }

  headers.forEach(function (header, column) {
    if (!header.hasAttribute("data-type")) {
      return;
    }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    while (header.firstChild) {
      button.appendChild(header.firstChild);
    }
    header.appendChild(button);
    button.addEventListener("click", function () { sortBy(column, button); });
  });
  [status, section, low, high, late, review].forEach(function (input) {
    if (input) {
      input.addEventListener("input", filter);
      input.addEventListener("change", filter);
    }
  });
  controls.hidden = false;
  table.classList.add("sortable");
  filter();
}());
