"""Everything the offline advisor says, in Indonesian and English.

Pure data: one :class:`Phrases` per language. Templates use ``str.format`` fields;
the composer (:mod:`adapters.offline.compose`) decides which ones to use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["EN", "ID", "RISK_GROUP", "GeneralSection", "Phrases", "phrases_for"]


@dataclass(slots=True, frozen=True, kw_only=True)
class GeneralSection:
    """Advice that needs no profile: an opening sentence and a few bullets."""

    intro: str
    bullets: tuple[str, ...]


@dataclass(slots=True, frozen=True, kw_only=True)
class Phrases:
    """The words and templates of one language."""

    code: str
    and_word: str
    list_last: str
    you: str

    # RIASEC, keyed by the archive's type names.
    riasec_name: Mapping[str, str]
    riasec_desc: Mapping[str, str]
    riasec_careers: Mapping[str, str]
    riasec_majors: Mapping[str, str]
    riasec_skills: Mapping[str, str]
    riasec_env: Mapping[str, str]

    # VIA, keyed by the archive key casefolded without separators: (name, at work).
    via: Mapping[str, tuple[str, str]]

    # Big Five.
    ocean_name: Mapping[str, str]
    ocean_high: Mapping[str, str]
    ocean_low: Mapping[str, str]
    ocean_watch: Mapping[tuple[str, str], str]
    ocean_env: Mapping[tuple[str, str], str]
    level: Mapping[str, str]

    # Career prospects and risk tolerance, values keyed casefolded.
    prospect_label: Mapping[str, str]
    prospect_value: Mapping[str, str]
    prospect_format: str
    risk_value: Mapping[str, str]
    risk_tip: Mapping[str, str]

    # Shared pieces.
    who_both: str
    who_archetype: str
    who_code: str
    score_bullet: str
    ocean_bullet: str
    headings: Mapping[str, str]

    careers_intro: str
    careers_riasec_intro: str
    career_majors: str
    careers_strengths: str
    careers_next: str

    strengths_intro: str
    persona_strengths: str
    strengths_outro: str

    weaknesses_intro: str
    pitfalls: str
    least_via: str
    weaknesses_outro: str

    majors_intro: str
    majors_riasec_intro: str
    majors_careers_hint: str
    majors_outro: str

    skills_intro: str
    skills_riasec_intro: str
    learning_style: str
    skills_outro: str

    environment_intro: str
    work_environment: str
    motivators: str
    risk: str
    environment_outro: str

    personality_archetype: str
    personality_intro: str
    holland_bullet: str
    holland_also: str
    top_via: str
    role_models: str
    personality_outro: str

    overview_intro: str
    overview_archetype: str
    overview_holland: str
    overview_careers: str
    invitation: str
    more_detail: str
    welcome: str
    take_assessment: str

    general: Mapping[str, GeneralSection]


RISK_GROUP: Mapping[str, str] = {
    "super high": "high",
    "very high": "high",
    "high": "high",
    "moderate": "moderate",
    "medium": "moderate",
    "low": "low",
    "very low": "low",
    "super low": "low",
}
"""Risk-tolerance values folded into the three groups ``risk_tip`` is keyed by."""

ID = Phrases(
    code="id",
    and_word="dan",
    list_last=", dan ",
    you="kamu",
    riasec_name={
        "realistic": "Realistis",
        "investigative": "Investigatif",
        "artistic": "Artistik",
        "social": "Sosial",
        "enterprising": "Wirausaha",
        "conventional": "Konvensional",
    },
    riasec_desc={
        "realistic": "suka bekerja langsung dengan alat, mesin, atau alam",
        "investigative": "suka meneliti, menganalisis, dan memecahkan masalah rumit",
        "artistic": "suka mencipta, berekspresi, dan berpikir di luar kebiasaan",
        "social": "suka membantu, mengajar, dan bekerja bersama orang lain",
        "enterprising": "suka memimpin, meyakinkan orang, dan mengambil inisiatif",
        "conventional": "suka keteraturan, data, dan sistem yang rapi",
    },
    riasec_careers={
        "realistic": "insinyur mesin, teknisi, arsitek lanskap, ahli agronomi",
        "investigative": "data scientist, peneliti, dokter, analis laboratorium",
        "artistic": "desainer grafis, penulis, arsitek, animator",
        "social": "guru, psikolog, perawat, konselor",
        "enterprising": "wirausahawan, manajer pemasaran, konsultan bisnis, diplomat",
        "conventional": "akuntan, analis keuangan, auditor, administrator basis data",
    },
    riasec_majors={
        "realistic": "Teknik Mesin, Teknik Sipil, Agroteknologi",
        "investigative": "Statistika, Ilmu Komputer, Biologi, Kedokteran",
        "artistic": "Desain Komunikasi Visual, Arsitektur, Sastra",
        "social": "Psikologi, Pendidikan, Keperawatan",
        "enterprising": "Manajemen, Ilmu Komunikasi, Hubungan Internasional",
        "conventional": "Akuntansi, Sistem Informasi, Administrasi Bisnis",
    },
    riasec_skills={
        "realistic": "gambar teknik/CAD dan pemecahan masalah praktis",
        "investigative": "statistika, analisis data, dan dasar pemrograman (misalnya Python)",
        "artistic": "desain visual, menulis, dan membangun portofolio karya",
        "social": "komunikasi, mendengarkan aktif, dan berbicara di depan umum",
        "enterprising": "negosiasi, presentasi, dan dasar manajemen proyek",
        "conventional": "spreadsheet tingkat lanjut, pembukuan, dan pengelolaan data yang teliti",
    },
    riasec_env={
        "realistic": "tempat kerja yang praktis dan nyata, seperti lapangan, bengkel, atau lab",
        "investigative": "lingkungan yang memberi waktu untuk berpikir mendalam dan meneliti",
        "artistic": "tempat yang menghargai ide orisinal dan memberi kebebasan berkreasi",
        "social": "tim yang kolaboratif dan pekerjaan yang berdampak langsung pada orang",
        "enterprising": "suasana dinamis dengan target jelas dan ruang untuk memimpin",
        "conventional": "organisasi yang tertata, dengan prosedur dan tanggung jawab yang jelas",
    },
    via={
        "creativity": (
            "kreativitas",
            "kamu menemukan cara baru dan orisinal untuk memecahkan masalah",
        ),
        "curiosity": (
            "rasa ingin tahu",
            "kamu senang menjelajah dan bertanya mengapa sesuatu terjadi",
        ),
        "judgment": ("berpikir kritis", "kamu menimbang bukti dengan cermat sebelum memutuskan"),
        "loveoflearning": (
            "cinta belajar",
            "kamu bersemangat menguasai ilmu dan keterampilan baru",
        ),
        "perspective": (
            "wawasan luas",
            "kamu melihat gambaran besar, dan nasihatmu dihargai orang",
        ),
        "bravery": (
            "keberanian",
            "kamu berani bersuara dan menerima tantangan meski ada rasa takut",
        ),
        "perseverance": ("ketekunan", "kamu menuntaskan apa yang kamu mulai, bahkan saat sulit"),
        "honesty": ("kejujuran", "kamu tulus, dan perkataanmu dipercaya orang"),
        "zest": ("semangat", "kamu menjalani pekerjaan dengan energi dan antusiasme"),
        "love": ("kasih sayang", "kamu membangun hubungan yang hangat dan dekat"),
        "kindness": ("kebaikan hati", "kamu ringan tangan membantu dan peduli pada orang lain"),
        "socialintelligence": ("kecerdasan sosial", "kamu peka membaca orang dan situasi"),
        "teamwork": ("kerja sama tim", "kamu berkontribusi dengan andal untuk tujuan bersama"),
        "fairness": ("keadilan", "kamu memperlakukan semua orang dengan setara dan adil"),
        "leadership": ("kepemimpinan", "kamu mampu mengorganisasi kelompok dan menjaga geraknya"),
        "forgiveness": ("sifat pemaaf", "kamu mudah memaafkan dan memberi kesempatan kedua"),
        "humility": ("kerendahan hati", "kamu membiarkan hasil kerjamu yang berbicara"),
        "prudence": (
            "kehati-hatian",
            "kamu merencanakan ke depan dan menghindari risiko yang tak perlu",
        ),
        "selfregulation": (
            "pengendalian diri",
            "kamu mampu mengelola dorongan, kebiasaan, dan emosimu",
        ),
        "appreciationofbeauty": (
            "apresiasi keindahan",
            "kamu peka terhadap keindahan dan kualitas, dalam karya maupun di sekitarmu",
        ),
        "gratitude": ("rasa syukur", "kamu menyadari dan menghargai hal-hal baik"),
        "hope": ("optimisme", "kamu yakin masa depan bisa baik dan berusaha mewujudkannya"),
        "humor": ("humor", "kamu mencairkan suasana dan mendekatkan orang"),
        "spirituality": ("spiritualitas", "kamu punya rasa makna dan tujuan hidup yang jelas"),
    },
    ocean_name={
        "openness": "Keterbukaan",
        "conscientiousness": "Ketelitian",
        "extraversion": "Ekstraversi",
        "agreeableness": "Keramahan",
        "neuroticism": "Neurotisisme",
    },
    ocean_high={
        "openness": "kamu terbuka pada ide baru, imajinatif, dan cepat tertarik pada hal baru",
        "conscientiousness": "kamu teratur, disiplin, dan bisa diandalkan menuntaskan tugas",
        "extraversion": (
            "kamu mendapat energi dari interaksi dan senang bekerja bersama banyak orang"
        ),
        "agreeableness": "kamu kooperatif, peduli, dan mudah dipercaya orang lain",
        "neuroticism": (
            "kamu peka terhadap tekanan, jadi rutinitas mengelola stres akan sangat membantu"
        ),
    },
    ocean_low={
        "openness": "kamu lebih nyaman dengan cara yang sudah terbukti dan hal-hal yang konkret",
        "conscientiousness": (
            "kamu fleksibel dan spontan, tetapi rutinitas dan tenggat bisa jadi tantangan"
        ),
        "extraversion": (
            "kamu lebih berenergi saat bekerja mandiri atau dalam kelompok kecil yang tenang"
        ),
        "agreeableness": "kamu lugas dan kritis, berani berbeda pendapat demi hasil terbaik",
        "neuroticism": "kamu cenderung tenang dan stabil saat menghadapi tekanan",
    },
    ocean_watch={
        ("extraversion", "low"): (
            "presentasi atau diskusi kelompok besar bisa menguras energimu; latih sedikit demi "
            "sedikit dan sisihkan waktu untuk memulihkan energi"
        ),
        ("conscientiousness", "low"): (
            "tenggat dan rutinitas mudah terlewat; pakai daftar tugas dan pecah pekerjaan besar "
            "menjadi langkah kecil"
        ),
        ("agreeableness", "low"): (
            "gaya yang lugas bisa terdengar keras; biasakan memberi apresiasi sebelum kritik"
        ),
        ("openness", "low"): (
            "perubahan mendadak bisa terasa tidak nyaman; coba satu hal baru yang kecil "
            "setiap minggu"
        ),
        ("neuroticism", "high"): (
            "tekanan dan kritik bisa terasa berat; bangun rutinitas pengelola stres seperti "
            "olahraga, menulis jurnal, atau teman bercerita"
        ),
    },
    ocean_env={
        (
            "extraversion",
            "low",
        ): "ruang untuk fokus dan bekerja mandiri, dengan kolaborasi dalam tim kecil",
        ("extraversion", "high"): "banyak interaksi: kerja tim, klien, atau publik",
        ("openness", "high"): "pekerjaan yang bervariasi dan memberi ruang untuk bereksperimen",
        ("openness", "low"): "peran dengan cara kerja yang stabil dan sudah terbukti",
        ("conscientiousness", "high"): "target dan tanggung jawab yang jelas",
        (
            "conscientiousness",
            "low",
        ): "fleksibilitas, dengan tenggat yang dibantu pengingat atau rekan",
        ("agreeableness", "high"): "budaya tim yang suportif dan saling menghargai",
        (
            "agreeableness",
            "low",
        ): "budaya yang menghargai debat terbuka dan keputusan berbasis data",
        ("neuroticism", "high"): "suasana yang tenang dengan ekspektasi yang jelas",
        ("neuroticism", "low"): "peran yang menuntut kepala dingin di bawah tekanan",
    },
    level={"high": "tinggi", "low": "rendah"},
    prospect_label={
        "jobAvailability": "peluang kerja",
        "salaryPotential": "potensi gaji",
        "aiOvertake": "risiko tergantikan AI",
        "industryGrowth": "pertumbuhan industri",
        "careerProgression": "jenjang karier",
        "skillDevelopment": "pengembangan diri",
    },
    prospect_value={
        "super high": "sangat tinggi",
        "very high": "sangat tinggi",
        "high": "tinggi",
        "moderate": "sedang",
        "medium": "sedang",
        "low": "rendah",
        "very low": "sangat rendah",
        "super low": "sangat rendah",
    },
    prospect_format="{label} {value}",
    risk_value={
        "super high": "sangat tinggi",
        "very high": "sangat tinggi",
        "high": "tinggi",
        "moderate": "sedang",
        "medium": "sedang",
        "low": "rendah",
        "very low": "sangat rendah",
        "super low": "sangat rendah",
    },
    risk_tip={
        "high": "startup atau proyek baru yang bergerak cepat bisa cocok untukmu",
        "moderate": "perusahaan yang sedang bertumbuh, dengan keseimbangan antara stabilitas "
        "dan tantangan baru",
        "low": "organisasi mapan dengan jalur karier yang jelas akan terasa lebih nyaman",
    },
    who_both=" sebagai **{archetype}** dengan kode Holland **{code}** ({names})",
    who_archetype=" sebagai **{archetype}**",
    who_code=" dengan kode Holland **{code}** ({names})",
    score_bullet="**{name}** ({score}): {text}",
    ocean_bullet="**{name}: {level}** ({score}) — {text}",
    headings={
        "careers": "Karier yang cocok",
        "strengths": "Kekuatanmu",
        "weaknesses": "Hal yang perlu kamu kembangkan",
        "majors": "Jurusan kuliah",
        "skills": "Keterampilan untuk dikembangkan",
        "environment": "Lingkungan kerja idealmu",
        "personality": "Kepribadianmu",
    },
    careers_intro="Berdasarkan profilmu{who}, ini karier yang paling cocok untukmu:",
    careers_riasec_intro=(
        "Profilmu belum memuat rekomendasi karier spesifik, tapi kode Holland **{code}** "
        "({names}) sudah memberi arah yang jelas:"
    ),
    career_majors="Jurusan terkait: {majors}.",
    careers_strengths=(
        "Kekuatan karaktermu — {strengths} — akan jadi modal besar di jalur-jalur ini."
    ),
    careers_next=(
        "Langkah berikutnya: uji satu pilihan lewat proyek kecil, magang, atau ngobrol dengan "
        "orang yang sudah bekerja di bidang itu."
    ),
    strengths_intro="Ini kekuatan yang paling menonjol dari hasil asesmenmu:",
    persona_strengths="**Dari profil personamu:** {items}",
    strengths_outro=(
        "Manfaatkan kekuatan ini dengan sengaja: pilih tugas, kegiatan, dan proyek yang "
        "memakainya setiap hari."
    ),
    weaknesses_intro=(
        "Setiap profil punya sisi yang perlu dijaga. Ini yang sebaiknya kamu perhatikan:"
    ),
    pitfalls="**Jebakan yang perlu diwaspadai:** {items}",
    least_via=(
        "**Kekuatan karakter yang paling jarang kamu pakai:** {items} — bukan kelemahan, tapi "
        "layak dilatih bila peranmu menuntutnya."
    ),
    weaknesses_outro=(
        "Semua ini bisa dilatih: pilih satu hal untuk diperbaiki bulan ini dan minta umpan balik "
        "dari teman atau mentor."
    ),
    majors_intro="Ini jurusan yang paling nyambung dengan karier yang direkomendasikan untukmu:",
    majors_riasec_intro=(
        "Profilmu belum mencantumkan jurusan spesifik, tapi kode Holland **{code}** ({names}) "
        "mengarah ke rumpun ilmu berikut:"
    ),
    majors_careers_hint="Utamakan yang paling dekat dengan karier rekomendasimu: {careers}.",
    majors_outro=(
        "Saat membandingkan kampus, lihat kurikulum, proyek, dan peluang magangnya — bukan "
        "hanya nama prodinya."
    ),
    skills_intro="Keterampilan yang paling layak kamu kembangkan sekarang:",
    skills_riasec_intro=(
        "Berdasarkan kode Holland **{code}** ({names}), keterampilan ini akan paling berguna "
        "untukmu:"
    ),
    learning_style="**Cara belajar yang paling cocok untukmu:** {text}",
    skills_outro=(
        "Mulai dari satu keterampilan dan targetkan proyek kecil yang bisa kamu tunjukkan "
        "dalam 4–6 minggu."
    ),
    environment_intro="Kamu akan paling berkembang di lingkungan kerja seperti ini:",
    work_environment="**Menurut profilmu:** {text}",
    motivators="**Yang paling memotivasimu:** {items}",
    risk="**Toleransi risiko: {level}** — {tip}.",
    environment_outro=(
        "Saat melamar kerja atau magang, tanyakan bagaimana tim bekerja sehari-hari — itu sama "
        "pentingnya dengan nama perusahaannya."
    ),
    personality_archetype="Tipe personamu adalah **{archetype}**.",
    personality_intro="Ini gambaran kepribadianmu menurut hasil asesmen:",
    holland_bullet="**Kode Holland {code}** ({names}): kamu {desc}",
    holland_also="; kamu juga {desc}",
    top_via="**Kekuatan karakter teratas:** {items}",
    role_models="**Tokoh inspirasi:** {items}",
    personality_outro=(
        "Ingat, hasil asesmen adalah peta, bukan takdir — gunakan untuk memilih langkah berikutnya."
    ),
    overview_intro="Ini ringkasan singkat profilmu:",
    overview_archetype="**Tipe persona:** {archetype}",
    overview_holland="**Kode Holland:** {code} ({names})",
    overview_careers="**Karier yang cocok:** {items}",
    invitation=(
        "Tanyakan saja tentang karier yang cocok, kekuatan dan kelemahanmu, jurusan kuliah, "
        "keterampilan yang perlu dipelajari, lingkungan kerja ideal, atau arti tipe "
        "kepribadianmu."
    ),
    more_detail="Mau pembahasan lebih dalam? Tanyakan salah satunya secara khusus.",
    welcome=(
        "Halo! Aku asisten kariermu. Aku bisa membantumu memahami minat, kekuatan, dan pilihan "
        "masa depanmu:"
    ),
    take_assessment=(
        "Aku belum punya hasil asesmenmu, jadi saran ini masih umum. Ikuti asesmen kepribadian "
        "(RIASEC, Big Five, dan VIA) agar aku bisa memberi saran yang personal berdasarkan "
        "profilmu."
    ),
    general={
        "careers": GeneralSection(
            intro="Berikut cara menemukan karier yang benar-benar cocok untukmu:",
            bullets=(
                "**Kenali minatmu**: kegiatan apa yang membuatmu lupa waktu — menganalisis, "
                "mencipta, membantu orang, memimpin, atau menata sistem?",
                "**Petakan kekuatanmu**: tugas atau proyek mana yang hasilnya paling kamu "
                "banggakan, dan mengapa?",
                "**Cek prospeknya**: lihat kebutuhan tenaga kerja, kisaran gaji, dan seberapa "
                "besar bidang itu terdampak AI.",
                "**Uji di dunia nyata**: magang, proyek kecil, atau ngobrol dengan orang yang "
                "sudah bekerja di bidang itu.",
            ),
        ),
        "strengths": GeneralSection(
            intro=(
                "Kekuatan paling mudah dikenali dari hal-hal yang terasa ringan bagimu tapi sulit "
                "bagi orang lain. Coba renungkan:"
            ),
            bullets=(
                "**Permintaan orang**: dalam hal apa teman paling sering meminta bantuanmu?",
                "**Energi**: tugas apa yang membuatmu makin bersemangat, bukan makin lelah?",
                "**Bukti nyata**: nilai, proyek, atau lomba mana yang hasilnya paling kamu "
                "banggakan?",
            ),
        ),
        "weaknesses": GeneralSection(
            intro=(
                "Mengenali kelemahan adalah langkah awal untuk berkembang. Cara praktis "
                "memetakannya:"
            ),
            bullets=(
                "**Minta umpan balik**: tanyakan pada guru, teman, atau mentor satu hal yang "
                "sebaiknya kamu perbaiki.",
                "**Perhatikan pola**: tugas apa yang sering kamu tunda atau hasilnya kurang "
                "memuaskan?",
                "**Fokus pada satu hal**: latih satu kebiasaan selama sebulan, lalu evaluasi.",
            ),
        ),
        "majors": GeneralSection(
            intro="Memilih jurusan sebaiknya dimulai dari dirimu sendiri, baru kemudian kampusnya:",
            bullets=(
                "**Minat**: topik apa yang tetap kamu pelajari meski tidak ada ujian?",
                "**Karier tujuan**: cari tahu jurusan yang ditempuh orang-orang di profesi yang "
                "kamu incar.",
                "**Kurikulum**: baca daftar mata kuliahnya dan bayangkan apakah kamu betah "
                "mempelajarinya selama empat tahun.",
                "**Prospek**: cek akreditasi, jejaring alumni, dan peluang magangnya.",
            ),
        ),
        "skills": GeneralSection(
            intro="Ini keterampilan yang berguna di hampir semua karier:",
            bullets=(
                "**Komunikasi**: menulis dengan jelas dan presentasi dengan percaya diri.",
                "**Literasi data**: spreadsheet, membaca grafik, dan dasar statistika.",
                "**Literasi digital dan AI**: memakai alat AI secara cerdas dan kritis.",
                "**Manajemen diri**: mengatur waktu, prioritas, dan tenggat.",
                (
                    "**Bahasa Inggris**: membuka akses ke lebih banyak sumber belajar dan "
                    "peluang kerja."
                ),
            ),
        ),
        "environment": GeneralSection(
            intro=(
                "Lingkungan kerja yang cocok bergantung pada minat dan gaya kerjamu. Pertanyaan "
                "ini bisa membantumu menilainya:"
            ),
            bullets=(
                "**Sendiri atau bersama tim?** Kamu lebih berenergi setelah bekerja sendiri atau "
                "setelah banyak berinteraksi?",
                "**Terstruktur atau fleksibel?** Kamu suka prosedur yang jelas atau kebebasan "
                "mengatur cara kerja?",
                "**Stabil atau dinamis?** Organisasi mapan atau startup yang bergerak cepat?",
                (
                    "**Benda, data, atau orang?** Bidang mana yang paling ingin kamu hadapi "
                    "setiap hari?"
                ),
            ),
        ),
        "personality": GeneralSection(
            intro="Asesmen kepribadian di sini mengukur tiga hal yang saling melengkapi:",
            bullets=(
                "**RIASEC (kode Holland)**: enam tipe minat — Realistis, Investigatif, Artistik, "
                "Sosial, Wirausaha, dan Konvensional.",
                "**Big Five (OCEAN)**: keterbukaan, ketelitian, ekstraversi, keramahan, dan "
                "neurotisisme.",
                "**VIA**: 24 kekuatan karakter, seperti rasa ingin tahu, kejujuran, dan "
                "kepemimpinan.",
            ),
        ),
        "overview": GeneralSection(
            intro="",
            bullets=(
                "**Karier**: profesi yang sesuai dengan minat dan kepribadianmu",
                "**Kekuatan dan kelemahan**: apa yang menonjol dan apa yang perlu dilatih",
                "**Jurusan kuliah**: program studi yang mendukung karier tujuanmu",
                "**Keterampilan**: apa yang sebaiknya dipelajari lebih dulu",
                "**Lingkungan kerja**: suasana tempat kamu paling berkembang",
            ),
        ),
    },
)

EN = Phrases(
    code="en",
    and_word="and",
    list_last=" and ",
    you="you",
    riasec_name={
        "realistic": "Realistic",
        "investigative": "Investigative",
        "artistic": "Artistic",
        "social": "Social",
        "enterprising": "Enterprising",
        "conventional": "Conventional",
    },
    riasec_desc={
        "realistic": "enjoy hands-on work with tools, machines or nature",
        "investigative": "enjoy researching, analysing and solving complex problems",
        "artistic": "enjoy creating, expressing ideas and thinking unconventionally",
        "social": "enjoy helping, teaching and working with people",
        "enterprising": "enjoy leading, persuading and taking the initiative",
        "conventional": "enjoy order, data and well-organised systems",
    },
    riasec_careers={
        "realistic": "mechanical engineer, technician, landscape architect, agronomist",
        "investigative": "data scientist, researcher, doctor, lab analyst",
        "artistic": "graphic designer, writer, architect, animator",
        "social": "teacher, psychologist, nurse, counsellor",
        "enterprising": "entrepreneur, marketing manager, business consultant, diplomat",
        "conventional": "accountant, financial analyst, auditor, database administrator",
    },
    riasec_majors={
        "realistic": "Mechanical Engineering, Civil Engineering, Agricultural Science",
        "investigative": "Statistics, Computer Science, Biology, Medicine",
        "artistic": "Visual Communication Design, Architecture, Literature",
        "social": "Psychology, Education, Nursing",
        "enterprising": "Management, Communication Studies, International Relations",
        "conventional": "Accounting, Information Systems, Business Administration",
    },
    riasec_skills={
        "realistic": "technical drawing/CAD and practical troubleshooting",
        "investigative": "statistics, data analysis and basic programming (for example Python)",
        "artistic": "visual design, writing and building a portfolio",
        "social": "communication, active listening and public speaking",
        "enterprising": "negotiation, presenting and project-management basics",
        "conventional": "advanced spreadsheets, bookkeeping and careful data management",
    },
    riasec_env={
        "realistic": "hands-on settings such as the field, a workshop or a lab",
        "investigative": "settings that give you time for deep thinking and research",
        "artistic": "places that value original ideas and give creative freedom",
        "social": "collaborative teams and work that directly helps people",
        "enterprising": "dynamic settings with clear targets and room to lead",
        "conventional": "well-organised workplaces with clear procedures and responsibilities",
    },
    via={
        "creativity": ("creativity", "you find fresh, original ways to solve problems"),
        "curiosity": ("curiosity", "you love exploring and asking why things work as they do"),
        "judgment": ("judgment", "you weigh the evidence carefully before deciding"),
        "loveoflearning": ("love of learning", "you pick up new knowledge and skills eagerly"),
        "perspective": ("perspective", "you see the big picture, and people value your advice"),
        "bravery": ("bravery", "you speak up and take on challenges despite fear"),
        "perseverance": ("perseverance", "you finish what you start, even when it gets hard"),
        "honesty": ("honesty", "you are genuine, and people trust your word"),
        "zest": ("zest", "you bring energy and enthusiasm to your work"),
        "love": ("love", "you build warm, close relationships"),
        "kindness": ("kindness", "you readily help and care for others"),
        "socialintelligence": ("social intelligence", "you read people and situations well"),
        "teamwork": ("teamwork", "you contribute reliably to a shared goal"),
        "fairness": ("fairness", "you treat everyone equally and fairly"),
        "leadership": ("leadership", "you organise groups and keep them moving"),
        "forgiveness": ("forgiveness", "you let go of grudges and give second chances"),
        "humility": ("humility", "you let your work speak for itself"),
        "prudence": ("prudence", "you plan ahead and avoid needless risks"),
        "selfregulation": ("self-regulation", "you manage your impulses, habits and emotions"),
        "appreciationofbeauty": (
            "appreciation of beauty",
            "you notice beauty and excellence, in work and in the world around you",
        ),
        "gratitude": ("gratitude", "you notice and appreciate what goes well"),
        "hope": ("hope", "you expect good things and work to make them happen"),
        "humor": ("humour", "you lighten the mood and bring people together"),
        "spirituality": ("spirituality", "you have a clear sense of meaning and purpose"),
    },
    ocean_name={
        "openness": "Openness",
        "conscientiousness": "Conscientiousness",
        "extraversion": "Extraversion",
        "agreeableness": "Agreeableness",
        "neuroticism": "Neuroticism",
    },
    ocean_high={
        "openness": "you welcome new ideas, think imaginatively and are drawn to the unfamiliar",
        "conscientiousness": "you are organised, disciplined and dependable",
        "extraversion": "you draw energy from people and enjoy working with others",
        "agreeableness": "you are cooperative, caring and easy to trust",
        "neuroticism": "you feel pressure strongly, so a stress-management routine helps a lot",
    },
    ocean_low={
        "openness": "you prefer proven methods and concrete matters",
        "conscientiousness": "you are flexible and spontaneous, though routines and deadlines "
        "can be a challenge",
        "extraversion": "you recharge by working independently or in small, calm groups",
        "agreeableness": "you are direct and critical, willing to disagree for the best result",
        "neuroticism": "you tend to stay calm and steady under pressure",
    },
    ocean_watch={
        ("extraversion", "low"): (
            "presentations and large group discussions can drain you; practise in small steps "
            "and plan time to recharge"
        ),
        ("conscientiousness", "low"): (
            "deadlines and routines can slip; keep a task list and break big work into small steps"
        ),
        ("agreeableness", "low"): (
            "a direct style can come across as harsh; open with appreciation before critique"
        ),
        ("openness", "low"): (
            "sudden change can feel uncomfortable; try one small new thing each week"
        ),
        ("neuroticism", "high"): (
            "pressure and criticism can weigh on you; build a stress routine such as exercise, "
            "journaling or a friend to talk to"
        ),
    },
    ocean_env={
        ("extraversion", "low"): "room to focus and work independently, with collaboration in "
        "small teams",
        ("extraversion", "high"): "plenty of interaction: teamwork, clients or the public",
        ("openness", "high"): "varied work with room to experiment",
        ("openness", "low"): "roles with stable, proven ways of working",
        ("conscientiousness", "high"): "clear goals and responsibilities",
        (
            "conscientiousness",
            "low",
        ): "flexibility, with deadlines backed by reminders or teammates",
        ("agreeableness", "high"): "a supportive, respectful team culture",
        ("agreeableness", "low"): "a culture that values open debate and data-driven decisions",
        ("neuroticism", "high"): "a calm atmosphere with clear expectations",
        ("neuroticism", "low"): "roles that need a cool head under pressure",
    },
    level={"high": "high", "low": "low"},
    prospect_label={
        "jobAvailability": "job availability",
        "salaryPotential": "salary potential",
        "aiOvertake": "risk of AI takeover",
        "industryGrowth": "industry growth",
        "careerProgression": "career progression",
        "skillDevelopment": "skill development",
    },
    prospect_value={
        "super high": "very high",
        "very high": "very high",
        "high": "high",
        "moderate": "moderate",
        "medium": "moderate",
        "low": "low",
        "very low": "very low",
        "super low": "very low",
    },
    prospect_format="{value} {label}",
    risk_value={
        "super high": "very high",
        "very high": "very high",
        "high": "high",
        "moderate": "moderate",
        "medium": "moderate",
        "low": "low",
        "very low": "very low",
        "super low": "very low",
    },
    risk_tip={
        "high": "start-ups and fast-moving new ventures can suit you",
        "moderate": "growing companies that balance stability with new challenges",
        "low": "established organisations with clear career paths will feel more comfortable",
    },
    who_both=" as **{archetype}** with the Holland code **{code}** ({names})",
    who_archetype=" as **{archetype}**",
    who_code=" with the Holland code **{code}** ({names})",
    score_bullet="**{name}** ({score}): {text}",
    ocean_bullet="**{name}: {level}** ({score}) — {text}",
    headings={
        "careers": "Careers that suit you",
        "strengths": "Your strengths",
        "weaknesses": "Areas to work on",
        "majors": "Majors to consider",
        "skills": "Skills to build",
        "environment": "Your ideal work environment",
        "personality": "Your personality",
    },
    careers_intro="Based on your profile{who}, these careers suit you best:",
    careers_riasec_intro=(
        "Your profile doesn't list specific careers yet, but your Holland code **{code}** "
        "({names}) already points in a clear direction:"
    ),
    career_majors="Related majors: {majors}.",
    careers_strengths="Your character strengths — {strengths} — are a real asset on these paths.",
    careers_next=(
        "Next step: test one option through a small project, an internship or a chat with "
        "someone already working in the field."
    ),
    strengths_intro="These are the strengths that stand out most in your assessment:",
    persona_strengths="**From your persona profile:** {items}",
    strengths_outro=(
        "Use these strengths on purpose: choose tasks, activities and projects that call on "
        "them every day."
    ),
    weaknesses_intro="Every profile has blind spots. Here's what to keep an eye on:",
    pitfalls="**Pitfalls to watch for:** {items}",
    least_via=(
        "**Your least-used character strengths:** {items} — not flaws, but worth practising "
        "if a role calls for them."
    ),
    weaknesses_outro=(
        "All of this can be trained: pick one point to work on this month and ask a friend or "
        "mentor for feedback."
    ),
    majors_intro="These majors lead most directly to your recommended careers:",
    majors_riasec_intro=(
        "Your profile doesn't name specific majors yet, but your Holland code **{code}** "
        "({names}) points to these fields:"
    ),
    majors_careers_hint="Favour the ones closest to your recommended careers: {careers}.",
    majors_outro=(
        "When comparing universities, look at the curriculum, projects and internship links — "
        "not just the programme name."
    ),
    skills_intro="The skills most worth building right now:",
    skills_riasec_intro=(
        "Based on your Holland code **{code}** ({names}), these skills will serve you best:"
    ),
    learning_style="**How you learn best:** {text}",
    skills_outro="Start with one skill and aim for a small project you can show within 4–6 weeks.",
    environment_intro="You'll do your best work in an environment like this:",
    work_environment="**From your profile:** {text}",
    motivators="**What drives you:** {items}",
    risk="**Risk tolerance: {level}** — {tip}.",
    environment_outro=(
        "When applying for jobs or internships, ask how the team works day to day — it matters "
        "as much as the company's name."
    ),
    personality_archetype="Your persona type is **{archetype}**.",
    personality_intro="Here's what your assessment says about your personality:",
    holland_bullet="**Holland code {code}** ({names}): you {desc}",
    holland_also="; you also {desc}",
    top_via="**Top character strengths:** {items}",
    role_models="**Role models:** {items}",
    personality_outro=(
        "Remember: an assessment is a map, not a destiny — use it to choose your next step."
    ),
    overview_intro="Here's a quick summary of your profile:",
    overview_archetype="**Persona type:** {archetype}",
    overview_holland="**Holland code:** {code} ({names})",
    overview_careers="**Careers that suit you:** {items}",
    invitation=(
        "Ask me about careers that suit you, your strengths and weaknesses, majors to study, "
        "skills to learn, your ideal work environment, or what your personality type means."
    ),
    more_detail="Want more depth? Ask about one of these on its own.",
    welcome=(
        "Hi! I'm your career advisor. I can help you understand your interests, strengths and "
        "options:"
    ),
    take_assessment=(
        "I don't have your assessment results yet, so this advice is general. Take the "
        "personality assessment (RIASEC, Big Five and VIA) and I can base my advice on your "
        "own profile."
    ),
    general={
        "careers": GeneralSection(
            intro="Here's how to find a career that genuinely fits you:",
            bullets=(
                "**Know your interests**: which activities make you lose track of time — "
                "analysing, creating, helping people, leading or organising?",
                "**Map your strengths**: which tasks or projects are you proudest of, and why?",
                "**Check the prospects**: look at demand, salary ranges and how strongly AI is "
                "changing the field.",
                "**Test it for real**: an internship, a small project or a chat with someone "
                "already working in the field.",
            ),
        ),
        "strengths": GeneralSection(
            intro=(
                "Strengths are easiest to spot in things that feel easy to you but hard for "
                "others. Ask yourself:"
            ),
            bullets=(
                "**What people ask you for**: what do friends most often come to you for help "
                "with?",
                "**Energy**: which tasks leave you more energised rather than drained?",
                "**Evidence**: which grades, projects or competitions are you proudest of?",
            ),
        ),
        "weaknesses": GeneralSection(
            intro=(
                "Knowing your weak spots is the first step to growing. A practical way to map them:"
            ),
            bullets=(
                "**Ask for feedback**: ask a teacher, friend or mentor for one thing you could "
                "do better.",
                "**Notice patterns**: which tasks do you tend to put off, or finish with results "
                "you're unhappy with?",
                "**Focus on one thing**: practise one habit for a month, then review it.",
            ),
        ),
        "majors": GeneralSection(
            intro="Choosing a major starts with you, and only then with the university:",
            bullets=(
                "**Interests**: which topics do you keep learning about even without an exam?",
                "**Target career**: find out what people in the job you want actually studied.",
                "**Curriculum**: read the course list and ask whether you'd enjoy it for four "
                "years.",
                "**Prospects**: check accreditation, the alumni network and internship links.",
            ),
        ),
        "skills": GeneralSection(
            intro="These skills pay off in almost any career:",
            bullets=(
                "**Communication**: clear writing and confident presenting.",
                "**Data literacy**: spreadsheets, reading charts and basic statistics.",
                "**Digital and AI literacy**: using AI tools smartly and critically.",
                "**Self-management**: handling time, priorities and deadlines.",
                "**English**: opens up far more learning resources and job opportunities.",
            ),
        ),
        "environment": GeneralSection(
            intro=(
                "The right work environment depends on your interests and working style. These "
                "questions help you judge it:"
            ),
            bullets=(
                "**Alone or with a team?** Do you feel more energised after solo work or after "
                "lots of interaction?",
                "**Structured or flexible?** Do you like clear procedures or freedom to organise "
                "your own work?",
                "**Stable or dynamic?** An established organisation or a fast-moving start-up?",
                "**Things, data or people?** Which do you most want to deal with every day?",
            ),
        ),
        "personality": GeneralSection(
            intro=(
                "The personality assessment here measures three things that complement each other:"
            ),
            bullets=(
                "**RIASEC (Holland code)**: six interest types — Realistic, Investigative, "
                "Artistic, Social, Enterprising and Conventional.",
                "**Big Five (OCEAN)**: openness, conscientiousness, extraversion, agreeableness "
                "and neuroticism.",
                "**VIA**: 24 character strengths, such as curiosity, honesty and leadership.",
            ),
        ),
        "overview": GeneralSection(
            intro="",
            bullets=(
                "**Careers**: jobs that match your interests and personality",
                "**Strengths and weaknesses**: what stands out and what to practise",
                "**Majors**: study programmes that lead to the career you want",
                "**Skills**: what to learn first",
                "**Work environment**: the setting where you'll thrive",
            ),
        ),
    },
)


def phrases_for(language: str) -> Phrases:
    """The phrases of ``language``: English for ``en`` (and ``en-US``...), else Indonesian."""
    return EN if language.strip().casefold().startswith("en") else ID
