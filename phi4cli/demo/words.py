"""Small embedded word lists: people, things, other languages, and the raw material of web junk.

The non-English sentences are ordinary, grammatical sentences written for this project, so that a real
language identifier (fastText lid.176, CLD3, ...) recognises the pages built from them.
"""

from __future__ import annotations

# (name, subject pronoun, possessive pronoun)
PEOPLE = [
    ("Anna", "she", "her"), ("Ben", "he", "his"), ("Carla", "she", "her"), ("David", "he", "his"),
    ("Elena", "she", "her"), ("Farid", "he", "his"), ("Grace", "she", "her"), ("Hiro", "he", "his"),
    ("Isabel", "she", "her"), ("Jamal", "he", "his"), ("Keiko", "she", "her"), ("Liam", "he", "his"),
    ("Maya", "she", "her"), ("Noah", "he", "his"), ("Olivia", "she", "her"), ("Pedro", "he", "his"),
    ("Quinn", "she", "her"), ("Ravi", "he", "his"), ("Sofia", "she", "her"), ("Tom", "he", "his"),
    ("Uma", "she", "her"), ("Victor", "he", "his"), ("Wendy", "she", "her"), ("Xavier", "he", "his"),
    ("Yara", "she", "her"), ("Zane", "he", "his"), ("Amara", "she", "her"), ("Bruno", "he", "his"),
    ("Chloe", "she", "her"), ("Diego", "he", "his"), ("Emma", "she", "her"), ("Felix", "he", "his"),
    ("Hana", "she", "her"), ("Ivan", "he", "his"), ("Julia", "she", "her"), ("Kofi", "he", "his"),
    ("Lena", "she", "her"), ("Marco", "he", "his"), ("Nadia", "she", "her"), ("Omar", "he", "his"),
    ("Priya", "she", "her"), ("Samuel", "he", "his"), ("Tara", "she", "her"), ("Yusuf", "he", "his"),
]

# things that are counted in word problems: (singular, plural)
THINGS = [
    ("apple", "apples"), ("pencil", "pencils"), ("sticker", "stickers"), ("marble", "marbles"),
    ("cookie", "cookies"), ("book", "books"), ("orange", "oranges"), ("cupcake", "cupcakes"),
    ("shell", "shells"), ("card", "cards"), ("balloon", "balloons"), ("toy car", "toy cars"),
    ("notebook", "notebooks"), ("muffin", "muffins"), ("stamp", "stamps"), ("bead", "beads"),
    ("flower", "flowers"), ("candle", "candles"), ("egg", "eggs"), ("sandwich", "sandwiches"),
]

PLANTS = ["tomato", "carrot", "lettuce", "pepper", "bean", "sunflower", "strawberry", "onion", "pumpkin"]
SAVINGS_GOALS = ["bicycle", "video game", "pair of shoes", "telescope", "guitar", "backpack", "skateboard"]
BAKED = ["cookies", "muffins", "pancakes", "biscuits", "scones", "brownies"]
VEHICLES = ["train", "bus", "car", "truck", "ferry"]
RELATIVES = [("sister", "she"), ("brother", "he"), ("cousin", "she"), ("uncle", "he"), ("aunt", "she")]
SHOPS = ["bakery", "bookshop", "toy shop", "fruit stall", "stationery shop", "flower shop"]

FORUM_USERS = [
    "mathfan42", "curious_cat", "teacher_jo", "nightowl", "physics_pete", "quietreader", "sam_the_student",
    "green_thumb", "old_timer", "data_dan", "lina.k", "rocketgirl", "mr_numbers", "hobby_chemist",
]

# ------------------------------------------------------------------------------ other languages

FOREIGN_SENTENCES = {
    "de": [
        "Die Sonne geht im Osten auf und im Westen unter.",
        "Im Sommer fahren viele Familien an die Ostsee oder in die Berge.",
        "Das Wasser kocht bei hundert Grad Celsius, wenn der Luftdruck normal ist.",
        "Unsere Schule hat eine neue Bibliothek mit vielen Büchern über Geschichte und Naturwissenschaften.",
        "Berlin ist die Hauptstadt von Deutschland und hat mehr als drei Millionen Einwohner.",
        "Der Rhein ist einer der längsten Flüsse in Europa.",
        "Am Wochenende gehen wir gern im Wald spazieren.",
        "Die Kinder lernen in der Grundschule lesen, schreiben und rechnen.",
        "Pflanzen brauchen Licht, Wasser und Kohlendioxid, um zu wachsen.",
        "Im Winter ist es in den Alpen oft sehr kalt, und es liegt viel Schnee.",
        "Mein Bruder arbeitet als Ingenieur bei einer großen Firma in München.",
        "Bitte schließen Sie die Tür, wenn Sie den Raum verlassen.",
        "Die Bäckerei an der Ecke verkauft jeden Morgen frisches Brot und Brötchen.",
        "Wir haben gestern Abend einen interessanten Film über die Geschichte der Raumfahrt gesehen.",
        "Der Zug nach Hamburg fährt um acht Uhr vom Hauptbahnhof ab.",
        "Fahrradfahren ist gesund und gut für die Umwelt.",
        "In der Mathematik lernen die Schüler, wie man Brüche addiert und multipliziert.",
        "Die Erde dreht sich in vierundzwanzig Stunden einmal um ihre eigene Achse.",
        "Viele Menschen trinken am Morgen eine Tasse Kaffee oder Tee.",
        "Das Museum ist montags geschlossen, aber am Sonntag ist der Eintritt frei.",
        "Johann Wolfgang von Goethe ist einer der bekanntesten deutschen Dichter.",
        "Es regnet heute, deshalb nehmen wir einen Regenschirm mit.",
        "Die Ärztin sagt, dass man jeden Tag genug Wasser trinken soll.",
        "Im Herbst werden die Blätter an den Bäumen gelb und rot.",
        "Nach dem Essen spielen die Kinder im Garten Fußball.",
    ],
    "es": [
        "El sol sale por el este y se pone por el oeste.",
        "Madrid es la capital de España y una ciudad con mucha historia.",
        "Los niños aprenden a leer y a escribir en la escuela primaria.",
        "El agua hierve a cien grados centígrados al nivel del mar.",
        "Todos los domingos comemos con mis abuelos en su casa del pueblo.",
        "Las plantas necesitan luz, agua y dióxido de carbono para crecer.",
        "El río Amazonas atraviesa varios países de América del Sur.",
        "Mi hermana estudia medicina en la universidad y quiere ser pediatra.",
        "Por favor, cierre la puerta cuando salga de la habitación.",
        "En verano hace mucho calor y la gente va a la playa.",
        "La biblioteca del barrio tiene libros de historia, ciencia y poesía.",
        "El tren para Sevilla sale a las ocho de la mañana.",
        "Miguel de Cervantes escribió Don Quijote de la Mancha.",
        "Hoy llueve, así que vamos a llevar un paraguas.",
        "Los estudiantes resolvieron los problemas de matemáticas sin la ayuda del profesor.",
        "La Tierra gira alrededor del Sol en aproximadamente trescientos sesenta y cinco días.",
        "Me gusta caminar por el parque cuando hace buen tiempo.",
        "El mercado abre temprano y vende frutas y verduras frescas.",
        "Aprender un idioma nuevo requiere paciencia y práctica diaria.",
        "El museo está cerrado los lunes, pero los domingos la entrada es gratuita.",
        "Después de cenar, mi familia y yo vemos una película juntos.",
        "La médica dice que es importante dormir ocho horas cada noche.",
        "En otoño las hojas de los árboles se vuelven amarillas y rojas.",
        "Nuestro equipo ganó el partido de fútbol el sábado pasado.",
        "Para hacer una tortilla de patatas se necesitan huevos, patatas, aceite y sal.",
    ],
    "fr": [
        "Le soleil se lève à l'est et se couche à l'ouest.",
        "Paris est la capitale de la France et compte de nombreux musées.",
        "Les enfants apprennent à lire et à écrire à l'école primaire.",
        "L'eau bout à cent degrés Celsius au niveau de la mer.",
        "Chaque dimanche, nous déjeunons chez mes grands-parents à la campagne.",
        "Les plantes ont besoin de lumière, d'eau et de dioxyde de carbone pour grandir.",
        "La Loire est le plus long fleuve de France.",
        "Ma sœur étudie la chimie à l'université et voudrait devenir chercheuse.",
        "Merci de fermer la porte en sortant de la salle.",
        "En été, il fait chaud et beaucoup de gens partent en vacances au bord de la mer.",
        "La bibliothèque municipale propose des livres d'histoire, de sciences et de poésie.",
        "Le train pour Lyon part à huit heures de la gare principale.",
        "Victor Hugo a écrit Les Misérables au dix-neuvième siècle.",
        "Il pleut aujourd'hui, alors nous prenons un parapluie.",
        "Les élèves ont résolu les exercices de mathématiques sans l'aide du professeur.",
        "La Terre tourne autour du Soleil en un peu plus de trois cent soixante-cinq jours.",
        "J'aime me promener dans le parc quand il fait beau.",
        "Le marché ouvre tôt le matin et vend des fruits et des légumes frais.",
        "Apprendre une nouvelle langue demande de la patience et beaucoup de pratique.",
        "Le musée est fermé le mardi, mais l'entrée est gratuite le premier dimanche du mois.",
        "Après le dîner, nous regardons souvent un film en famille.",
        "Le médecin explique qu'il faut boire assez d'eau chaque jour.",
        "En automne, les feuilles des arbres deviennent jaunes et rouges.",
        "Notre équipe a gagné le match de football samedi dernier.",
        "Pour faire des crêpes, il faut de la farine, des œufs, du lait et un peu de beurre.",
    ],
    "it": [
        "Il sole sorge a est e tramonta a ovest.",
        "Roma è la capitale d'Italia ed è famosa per i suoi monumenti antichi.",
        "I bambini imparano a leggere e a scrivere alla scuola elementare.",
        "L'acqua bolle a cento gradi centigradi al livello del mare.",
        "Ogni domenica pranziamo a casa dei nonni in campagna.",
        "Le piante hanno bisogno di luce, acqua e anidride carbonica per crescere.",
        "Il Po è il fiume più lungo d'Italia.",
        "Mio fratello studia ingegneria all'università di Milano.",
        "Per favore, chiudi la porta quando esci dalla stanza.",
        "D'estate fa molto caldo e molte persone vanno al mare.",
        "La biblioteca comunale ha libri di storia, di scienze e di poesia.",
        "Il treno per Firenze parte alle otto dalla stazione centrale.",
        "Dante Alighieri scrisse la Divina Commedia.",
        "Oggi piove, quindi prendiamo l'ombrello.",
        "Gli studenti hanno risolto gli esercizi di matematica senza l'aiuto dell'insegnante.",
        "La Terra gira intorno al Sole in circa trecentosessantacinque giorni.",
        "Mi piace passeggiare nel parco quando c'è il sole.",
        "Il mercato apre presto la mattina e vende frutta e verdura fresca.",
        "Imparare una nuova lingua richiede pazienza e pratica quotidiana.",
        "Il museo è chiuso il lunedì, ma la prima domenica del mese l'ingresso è gratuito.",
        "Dopo cena guardiamo spesso un film tutti insieme.",
        "Il medico dice che bisogna bere abbastanza acqua ogni giorno.",
        "In autunno le foglie degli alberi diventano gialle e rosse.",
        "La nostra squadra ha vinto la partita di calcio sabato scorso.",
        "Per preparare la pasta al pomodoro servono pasta, pomodori, olio, aglio e basilico.",
    ],
    "pt": [
        "O sol nasce no leste e se põe no oeste.",
        "Lisboa é a capital de Portugal e fica às margens do rio Tejo.",
        "As crianças aprendem a ler e a escrever na escola primária.",
        "A água ferve a cem graus Celsius ao nível do mar.",
        "Todos os domingos almoçamos na casa dos meus avós.",
        "As plantas precisam de luz, água e dióxido de carbono para crescer.",
        "O rio Amazonas é o maior rio do mundo em volume de água.",
        "Minha irmã estuda medicina na universidade e quer ser pediatra.",
        "Por favor, feche a porta quando sair da sala.",
        "No verão faz muito calor e muitas pessoas vão à praia.",
        "A biblioteca do bairro tem livros de história, ciência e poesia.",
        "O trem para o Rio de Janeiro sai às oito horas da manhã.",
        "Luís de Camões escreveu Os Lusíadas no século dezesseis.",
        "Hoje está chovendo, então vamos levar um guarda-chuva.",
        "Os alunos resolveram os exercícios de matemática sem a ajuda do professor.",
        "A Terra gira em torno do Sol em aproximadamente trezentos e sessenta e cinco dias.",
        "Eu gosto de caminhar no parque quando o tempo está bom.",
        "A feira abre cedo e vende frutas e verduras frescas.",
        "Aprender uma nova língua exige paciência e prática diária.",
        "O museu fecha às segundas-feiras, mas aos domingos a entrada é gratuita.",
        "Depois do jantar, assistimos a um filme em família.",
        "A médica diz que é importante dormir oito horas por noite.",
        "No outono, as folhas das árvores ficam amarelas e vermelhas.",
        "O nosso time ganhou o jogo de futebol no sábado passado.",
        "Para fazer um bolo, são necessários farinha, ovos, leite, açúcar e manteiga.",
    ],
    "nl": [
        "De zon komt op in het oosten en gaat onder in het westen.",
        "Amsterdam is de hoofdstad van Nederland.",
        "De kinderen leren lezen en schrijven op de basisschool.",
        "Water kookt bij honderd graden Celsius op zeeniveau.",
        "Elke zondag eten we bij mijn grootouders.",
        "Planten hebben licht, water en koolstofdioxide nodig om te groeien.",
        "In de zomer fietsen veel mensen naar het strand.",
        "Mijn zus studeert biologie aan de universiteit van Utrecht.",
        "Wilt u de deur sluiten als u de kamer verlaat?",
        "De trein naar Rotterdam vertrekt om acht uur.",
        "Het regent vandaag, dus we nemen een paraplu mee.",
        "De leerlingen hebben de rekenopgaven zonder hulp opgelost.",
        "Ik wandel graag in het park als het mooi weer is.",
        "De markt gaat vroeg open en verkoopt verse groenten en fruit.",
        "Een nieuwe taal leren vraagt geduld en veel oefening.",
        "In de herfst worden de bladeren aan de bomen geel en rood.",
    ],
    "ru": [
        "Солнце встаёт на востоке и садится на западе.",
        "Москва — столица России и один из крупнейших городов Европы.",
        "Дети учатся читать и писать в начальной школе.",
        "Вода кипит при ста градусах Цельсия на уровне моря.",
        "Каждое воскресенье мы обедаем у бабушки и дедушки.",
        "Растениям нужны свет, вода и углекислый газ, чтобы расти.",
        "Волга — самая длинная река в Европе.",
        "Моя сестра изучает физику в университете.",
        "Пожалуйста, закройте дверь, когда будете выходить из комнаты.",
        "Летом многие семьи отдыхают на море.",
        "Поезд в Санкт-Петербург отправляется в восемь часов утра.",
        "Лев Толстой написал роман «Война и мир».",
        "Сегодня идёт дождь, поэтому мы возьмём зонт.",
        "Ученики решили задачи по математике без помощи учителя.",
        "Осенью листья на деревьях становятся жёлтыми и красными.",
    ],
    "ja": [
        "太陽は東から昇り、西に沈みます。",
        "東京は日本の首都で、とても大きな都市です。",
        "子どもたちは小学校で読み書きを学びます。",
        "水は海面の高さでは摂氏百度で沸騰します。",
        "毎週日曜日に家族で祖父母の家に行きます。",
        "植物が育つためには光と水と二酸化炭素が必要です。",
        "今日は雨が降っているので、傘を持って行きます。",
        "図書館には歴史や科学の本がたくさんあります。",
        "秋になると木の葉が黄色や赤に変わります。",
        "新しい言語を学ぶには毎日の練習が大切です。",
    ],
}

# Sentences with slots ({name}, {n}, {city}) so pages in one language are not all alike.
FOREIGN_TEMPLATES = {
    "de": [
        "{name} wohnt seit {n} Jahren in {city} und arbeitet in einer Schule.",
        "Am Samstag kauft {name} auf dem Markt in {city} {n} Äpfel.",
        "Die Fahrt von {city} bis zur Küste dauert ungefähr {n} Stunden.",
    ],
    "es": [
        "{name} vive en {city} desde hace {n} años y trabaja en una escuela.",
        "El sábado {name} compra {n} naranjas en el mercado de {city}.",
        "El viaje de {city} a la costa dura unas {n} horas.",
    ],
    "fr": [
        "{name} habite à {city} depuis {n} ans et travaille dans une école.",
        "Samedi, {name} achète {n} pommes au marché de {city}.",
        "Le trajet de {city} jusqu'à la côte dure environ {n} heures.",
    ],
    "it": [
        "{name} abita a {city} da {n} anni e lavora in una scuola.",
        "Sabato {name} compra {n} mele al mercato di {city}.",
        "Il viaggio da {city} fino al mare dura circa {n} ore.",
    ],
    "pt": [
        "{name} mora em {city} há {n} anos e trabalha numa escola.",
        "No sábado, {name} compra {n} laranjas na feira de {city}.",
        "A viagem de {city} até o litoral leva cerca de {n} horas.",
    ],
    "nl": [
        "{name} woont al {n} jaar in {city} en werkt op een school.",
        "Op zaterdag koopt {name} {n} appels op de markt in {city}.",
    ],
    "ru": ["{name} живёт в городе {city} уже {n} лет и работает в школе."],
    "ja": ["{name}さんは{city}に{n}年住んでいます。"],
}

FOREIGN_CITIES = {
    "de": ["Köln", "Leipzig", "Dresden", "Bremen", "Freiburg", "Nürnberg"],
    "es": ["Valencia", "Bilbao", "Granada", "Zaragoza", "Málaga", "Salamanca"],
    "fr": ["Lille", "Nantes", "Bordeaux", "Toulouse", "Strasbourg", "Rennes"],
    "it": ["Torino", "Bologna", "Napoli", "Verona", "Genova", "Palermo"],
    "pt": ["Porto", "Coimbra", "Braga", "Recife", "Salvador", "Curitiba"],
    "nl": ["Utrecht", "Leiden", "Groningen", "Eindhoven", "Haarlem"],
    "ru": ["Казань", "Самара", "Омск", "Томск"],
    "ja": ["大阪", "京都", "札幌", "福岡"],
}

FOREIGN_NAMES = {
    "de": ["Lukas", "Marie", "Jonas", "Hannah", "Felix", "Lea"],
    "es": ["Lucía", "Mateo", "Carmen", "Javier", "Elena", "Pablo"],
    "fr": ["Camille", "Louis", "Chloé", "Hugo", "Manon", "Jules"],
    "it": ["Giulia", "Marco", "Francesca", "Luca", "Chiara", "Matteo"],
    "pt": ["Beatriz", "João", "Mariana", "Tiago", "Inês", "Rafael"],
    "nl": ["Sanne", "Daan", "Fleur", "Bram", "Lotte"],
    "ru": ["Анна", "Иван", "Мария", "Дмитрий"],
    "ja": ["田中", "佐藤", "鈴木", "高橋"],
}

FOREIGN_TITLES = {
    "de": ["Neuigkeiten aus der Schule", "Unser Wochenende", "Wissenswertes für Kinder", "Tagebuch"],
    "es": ["Noticias del barrio", "Nuestro fin de semana", "Curiosidades para niños", "Mi diario"],
    "fr": ["Nouvelles de l'école", "Notre week-end", "Le saviez-vous ?", "Mon journal"],
    "it": ["Notizie dalla scuola", "Il nostro fine settimana", "Curiosità per bambini", "Il mio diario"],
    "pt": ["Notícias da escola", "O nosso fim de semana", "Curiosidades para crianças", "Meu diário"],
    "nl": ["Nieuws van school", "Ons weekend", "Weetjes voor kinderen"],
    "ru": ["Новости школы", "Наши выходные", "Интересные факты"],
    "ja": ["学校のお知らせ", "週末の日記", "豆知識"],
}

# ------------------------------------------------------------------------------ web junk material

SPAM_PRODUCTS = [
    "weight loss pills", "cheap watches", "casino bonus", "crypto signals", "designer handbags",
    "cheap flights", "payday loans", "phone unlock", "followers", "essay writing service",
    "diet tea", "replica sneakers", "online pharmacy", "forex robot", "free gift cards",
]
SPAM_SHOUTS = [
    "BUY NOW", "LIMITED OFFER", "ACT FAST", "100% GUARANTEED", "FREE SHIPPING", "BEST PRICE ONLINE",
    "CLICK HERE", "DON'T MISS OUT", "ORDER TODAY", "LOWEST PRICE EVER", "WIN BIG", "NO PRESCRIPTION NEEDED",
]
SPAM_DOMAINS = ["best-deals-online", "cheap-offers-4u", "mega-discount", "top10reviews-now", "winbig-casino"]

NAV_ITEMS = [
    "Home", "About Us", "Products", "Services", "Blog", "News", "Contact", "Shop", "Cart", "Login",
    "Register", "FAQ", "Careers", "Support", "Downloads", "Gallery", "Events", "Sitemap", "Search",
]
COOKIE_BANNERS = [
    "We use cookies to improve your experience on our website. "
    "By continuing to browse, you agree to our use of cookies.",
    "This website uses cookies to ensure you get the best experience. Learn more in our Cookie Policy.",
    "Accept all cookies | Reject non-essential cookies | Manage preferences",
]
POLICY_LINES = [
    "Privacy Policy | Terms of Use | Cookie Policy | Accessibility",
    "All rights reserved.",
    "Terms and conditions apply.",
    "By using this site you agree to the Terms of Use and Privacy Policy.",
    "Do not sell or share my personal information.",
    "Subscribe to our newsletter",
    "Follow us on Facebook, Twitter and Instagram",
    "Share this page",
    "Back to top",
]
JAVASCRIPT_LINES = [
    "Please enable JavaScript in your browser to view this page.",
    "JavaScript is disabled. Some features of this site will not work.",
    "window.dataLayer = window.dataLayer || [];",
    "function gtag(){dataLayer.push(arguments);}",
    "document.getElementById('menu').addEventListener('click', toggleMenu);",
    "var _paq = window._paq = window._paq || [];",
]
ERROR_PAGES = [
    "404 Not Found",
    "The page you are looking for might have been removed, had its name changed, or is temporarily unavailable.",
    "Please check the address or return to the home page.",
]
LOREM_IPSUM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex "
    "ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat "
    "nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit "
    "anim id est laborum."
)
REPEATED_LINE_POOL = [
    "Click here to read more",
    "Share on Facebook",
    "Add to cart",
    "Posted in Uncategorized",
    "Leave a comment",
    "Read more »",
    "Sponsored link",
    "Download now for free",
]

# word swaps used to make near-duplicates: small edits that keep the page readable
NEAR_DUPLICATE_SWAPS = {
    "large": "big", "big": "large", "often": "frequently", "many": "numerous", "also": "too",
    "important": "significant", "small": "little", "shows": "demonstrates", "about": "around",
    "very": "really", "because": "since", "begin": "start", "people": "folks", "quickly": "rapidly",
    "simple": "easy", "example": "instance", "called": "named", "famous": "well-known", "city": "town",
}
NEAR_DUPLICATE_NOTES = [
    "Updated for the new school year.",
    "Reposted with permission from our partner site.",
    "This article was first published in our weekly newsletter.",
    "Last reviewed by the editorial team this month.",
]
