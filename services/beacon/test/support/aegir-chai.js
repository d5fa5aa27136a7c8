// Stands in for `aegir/chai`, which the js-stores compliance suites import but do not depend
// on (aegir is their dev tool). Same chai major and plugins aegir wires, for the assertions
// the suites use: chai-as-promised (`eventually`, `rejected`) and chai-parentheses
// (`.to.be.true()`).
import chai from 'chai'
import chaiAsPromised from 'chai-as-promised'
import chaiParentheses from 'chai-parentheses'

chai.use(chaiAsPromised)
chai.use(chaiParentheses)

export const expect = chai.expect
export const assert = chai.assert
