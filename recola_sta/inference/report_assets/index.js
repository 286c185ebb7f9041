// index.html of recola_sta.report: click a column's header to sort the rows
// by it (again to reverse). Cells carry their sort key in data-sort: numbers
// sort as numbers, empty keys last.
(function () {
  "use strict";
  const table = document.getElementById("index");
  const body = table.tBodies[0];
  const headers = Array.from(table.tHead.rows[0].cells);

  function key(row, column) {
    const text = row.cells[column].getAttribute("data-sort");
    if (text === null || text === "") return null;
    const number = Number(text);
    return Number.isNaN(number) ? text.toLowerCase() : number;
  }

  function compare(a, b, direction) {
    if (a === null) return b === null ? 0 : 1;
    if (b === null) return -1;
    if (typeof a !== typeof b) return (typeof a === "number" ? -1 : 1) * direction;
    return (a < b ? -1 : a > b ? 1 : 0) * direction;
  }

  headers.forEach(function (th, column) {
    th.addEventListener("click", function () {
      const direction = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", direction === 1 ? "ascending" : "descending");
      const rows = Array.from(body.rows).map(function (row, i) { return [row, i]; });
      rows.sort(function (a, b) {
        return compare(key(a[0], column), key(b[0], column), direction) || a[1] - b[1];
      });
      rows.forEach(function (pair) { body.appendChild(pair[0]); });
    });
  });
})();
