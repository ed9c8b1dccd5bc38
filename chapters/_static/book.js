// Display equations wider than the text column are scaled down until they fit it (MathJax 3 does not break
// lines). Long equations are split with aligned/multline in the chapters, so at desktop widths nothing is
// scaled; on a phone the remaining ones shrink rather than being cut off. Re-applied when the width changes.
(function () {
  "use strict";

  function fit() {
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (el) {
      if (!("fitFont" in el.dataset)) el.dataset.fitFont = el.style.fontSize || "100%";
      var base = parseFloat(el.dataset.fitFont);
      el.style.fontSize = base + "%";
      var math = el.querySelector("mjx-math");
      var box = el.parentElement;
      if (!math || !box) return;
      var style = getComputedStyle(box);
      var room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 2;
      var number = box.querySelector(":scope > .eqno");          // "(3.2)" floats beside the equation
      if (number) room -= number.getBoundingClientRect().width + 8;
      var need = el.scrollWidth > el.clientWidth ? el.scrollWidth : math.getBoundingClientRect().width;
      if (room > 0 && need > room) {
        var scale = Math.floor((1000 * room) / need) / 1000;
        el.style.fontSize = (base * scale).toFixed(1) + "%";
        el.dataset.fitScale = scale;
      } else {
        delete el.dataset.fitScale;
      }
    });
  }

  function whenTypeset() {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(fit);
    } else if (document.querySelector(".math")) {
      setTimeout(whenTypeset, 50);
    }
  }

  window.addEventListener("resize", fit);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", whenTypeset);
  else whenTypeset();
})();

// Search results: Sphinx builds each result's snippet from the page's HTML, where math is still TeX
// (MathJax typesets it only on the page itself). Short formulas keep their text without the delimiters
// (\(z = 5\) -> z = 5); anything with TeX commands, braces, sub- or superscripts becomes "[formula]".
(function () {
  "use strict";

  function plainMath(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    doc.querySelectorAll(".math").forEach(function (el) {
      var tex = el.textContent.trim().replace(/^\\[(\[]/, "").replace(/\\[)\]]$/, "").trim();
      el.textContent = /[\\{}^_$]/.test(tex) ? " [formula] " : tex;
    });
    return doc.documentElement.outerHTML;
  }

  function patch() {
    // searchtools.js declares `const Search`: a global binding, not a property of window
    if (typeof Search === "undefined" || !Search.htmlToText || Search.htmlToText.plainMath) return;
    var original = Search.htmlToText;
    Search.htmlToText = function (html, anchor) { return original(plainMath(html), anchor); };
    Search.htmlToText.plainMath = true;
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", patch);
  else patch();
})();
