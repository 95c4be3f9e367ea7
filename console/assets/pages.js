// The page table: one entry per page, in menu order. A page is one ES module (page-<name>.js)
// whose default export is {title, render(root, ctx)}; render may return a cleanup function
// (called when the page is left). `roles` says who sees it in the menu and may open it.
// Adding a page = one module + one line here (docs/console.md "Adding a page").

export const PAGES = [
  { path: 'dashboard', title: '数据概览', group: '运营', roles: ['admin', 'merchant'] },
  { path: 'moderation', title: '内容审核', group: '运营', roles: ['admin'] },
  { path: 'users', title: '用户管理', group: '运营', roles: ['admin'] },
  { path: 'feedback', title: '用户反馈', group: '运营', roles: ['admin'] },
  { path: 'products', title: '商品与库存', group: '商城', roles: ['admin', 'merchant'] },
  { path: 'orders', title: '订单', group: '商城', roles: ['admin', 'merchant'] },
  { path: 'refunds', title: '退款售后', group: '商城', roles: ['admin', 'merchant'] },
  { path: 'categories', title: '商城分类', group: '商城', roles: ['admin'] },
  { path: 'coupons', title: '优惠券', group: '商城', roles: ['admin', 'merchant'] },
  { path: 'group-buys', title: '拼团规则', group: '商城', roles: ['admin', 'merchant'] },
  { path: 'home', title: '首页运营', group: '商城', roles: ['admin'] },
  { path: 'virtual-items', title: '虚拟物品', group: '商城', roles: ['admin', 'merchant'] },
  { path: 'services', title: '服务预约', group: '服务', roles: ['admin', 'merchant'] },
  { path: 'activities', title: '活动报名', group: '服务', roles: ['admin', 'merchant'] },
  { path: 'points', title: '积分规则', group: '财务', roles: ['admin'] },
  { path: 'reconciliation', title: '对账报告', group: '财务', roles: ['admin'] },
  { path: 'audit', title: '审计日志', group: '系统', roles: ['admin'] },
  { path: 'dead-letters', title: '失败任务', group: '系统', roles: ['admin'] },
];

export const loadPage = (path) => import(`./page-${path}.js`);
