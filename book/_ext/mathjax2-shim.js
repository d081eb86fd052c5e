/* MathJax 2 API shim for the ipywidgets HTML manager under MathJax 3.
 *
 * The widget manager typesets widget labels with
 *   MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])
 * which does not exist in MathJax 3. This file, loaded before MathJax, keeps a
 * `Hub` on whatever object `window.MathJax` is (the configuration object first,
 * then the MathJax 3 object that replaces it) and forwards to typesetPromise.
 */
(function () {
  "use strict";
  var pending = [];

  function typeset(element) {
    var mj = window.MathJax;
    if (!(mj && mj.startup && mj.startup.promise && mj.typesetPromise)) {
      pending.push(element);  // MathJax 3 not loaded yet: retry on window load
      return;
    }
    mj.startup.promise
      .then(function () { return mj.typesetPromise(element ? [element] : undefined); })
      .catch(function (err) { console.warn("mathjax2-shim: typeset failed", err); });
  }

  var hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset") typeset(job[2]);
        else if (typeof job === "function") job();
      }
    },
    Typeset: function (element) { typeset(element); }
  };

  function addHub(mj) {
    if (mj && typeof mj === "object" && !Object.prototype.hasOwnProperty.call(mj, "Hub")) {
      Object.defineProperty(mj, "Hub", { value: hub, enumerable: false, configurable: true });
    }
    return mj;
  }

  var current = addHub(window.MathJax);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    enumerable: true,
    get: function () { return current; },
    set: function (value) { current = addHub(value); }
  });

  window.addEventListener("load", function () {
    var todo = pending;
    pending = [];
    todo.forEach(typeset);
  });
})();
