// Drag-and-drop reordering of playlist items. The keyboard way is the Move up / Move down
// buttons (server-side); dragging only reorders the rows, whose field order is the order
// saved, and marks the draft unsaved.
(function () {
  "use strict";
  var dragged = null;

  function renumber(list) {
    list.querySelectorAll("[data-item]").forEach(function (li, index) {
      var legend = li.querySelector("legend");
      if (legend) {
        var kind = li.querySelector('input[name="type"]').value;
        legend.lastChild.textContent = " Item " + (index + 1) + ": " + kind;
      }
    });
    var form = list.closest("form");
    if (form && !form.querySelector(".unsaved")) {
      var note = document.createElement("p");
      note.className = "unsaved";
      note.setAttribute("role", "status");
      note.textContent = "Unsaved changes: save the playlist to send it to the screens.";
      form.insertBefore(note, list);
    }
  }

  document.addEventListener("dragstart", function (event) {
    var li = event.target.closest && event.target.closest("[data-item]");
    if (!li) return;
    dragged = li;
    li.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", "item");
  });
  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
  });
  document.addEventListener("dragover", function (event) {
    if (!dragged) return;
    var over = event.target.closest && event.target.closest("[data-item]");
    if (!over || over === dragged || over.parentNode !== dragged.parentNode) return;
    event.preventDefault();
    var box = over.getBoundingClientRect();
    var after = event.clientY > box.top + box.height / 2;
    over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
  });
  document.addEventListener("drop", function (event) {
    if (!dragged) return;
    event.preventDefault();
    renumber(dragged.parentNode);
  });
})();
